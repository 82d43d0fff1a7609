"""Tests of the testing toolkit itself."""
