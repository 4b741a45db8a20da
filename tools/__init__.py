"""Repository tooling (not imported by the notebooks): run notebooks, load their definitions for
tests, generate their first cell, check the numbers quoted in prose against results/."""
