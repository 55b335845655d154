"""Tests of the application package (:mod:`p2ploader.app`): the command, its views and plots, the
swarm runner, the viewer process and the simulate command."""
