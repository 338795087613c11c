"""Faust agents, one module per pipeline step."""
