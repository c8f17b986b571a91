"""Pure decisions: validation, phases, steps, verdicts. No I/O; time is passed in."""
