"""Code the tests share, imported as `helpers.<module>`: pytest puts tests/ (no package) on sys.path."""
