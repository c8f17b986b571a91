"""Tests of the local sandbox (headway.sandbox)."""
