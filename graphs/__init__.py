"""Orchestration: the LangGraph editing state machine, sessions, traces and the CLI."""
