"""Shared pytest set-up. Fixtures live in one plugin module per area, so they stay small."""

pytest_plugins = [
    "fixtures_replay",
    "fixtures_local",
    "fixtures_faults",
    "fixtures_kernel",
    "fixtures_panel",
    "fixtures_browser",
    "fixtures_attacks",
    "fixtures_upstream",
]
