"""Prompt templates shipped as package data, rendered strictly (used by agents/)."""
