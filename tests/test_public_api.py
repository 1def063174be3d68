import skillswitch


def test_public_names_are_pinned() -> None:
    # Changing the public surface is a deliberate act: update this list with it.
    assert sorted(skillswitch.__all__) == [
        "Answer",
        "ArtifactError",
        "Config",
        "ConfigError",
        "DatasetError",
        "Encoder",
        "EncoderError",
        "EncoderHTTPError",
        "Expert",
        "ExpertError",
        "ExpertHTTPError",
        "ExpertReply",
        "ExpertSpec",
        "ExpertsFailedError",
        "FunctionExpert",
        "Message",
        "MissingDependencyError",
        "NoExpertError",
        "RequestError",
        "ResponseFormatError",
        "Router",
        "RoutingDecision",
        "SkillScore",
        "SkillSwitchError",
        "Switch",
        "TestExpert",
        "Trace",
        "UnknownExpertError",
        "__version__",
        "config_json_schema",
        "default_config",
        "load_config",
    ]
    for name in skillswitch.__all__:
        assert hasattr(skillswitch, name), name


def test_every_error_is_a_skillswitch_error() -> None:
    for name in skillswitch.__all__:
        value = getattr(skillswitch, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, skillswitch.SkillSwitchError)
