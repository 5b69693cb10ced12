"""Shared fixtures: time runs on trio's MockClock where a test asks for ``autojump_clock``."""
