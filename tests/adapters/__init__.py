"""Tests of the adapters on real and fake sockets."""
