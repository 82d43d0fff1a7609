"""Tests of bufkit."""
