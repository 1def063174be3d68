"""Adapters that let other frameworks drive skillswitch (each behind its own optional extra).

``skillswitch.integrations.langchain``: a LangChain chat model over a ``Switch``, and LangChain
tools as skillswitch tools (``pip install 'skillswitch[langchain]'``).
"""
