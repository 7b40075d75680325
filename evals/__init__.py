"""Instruction-robustness evaluation of the editing agents."""
