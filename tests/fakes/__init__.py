"""Test doubles shared by every package's tests."""
