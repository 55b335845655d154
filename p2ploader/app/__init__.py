"""The ``p2ploader`` application, on top of the library: nothing in the library imports it.

- :mod:`~p2ploader.app.cli`: the ``p2ploader`` command (the console script's entry point).
- :mod:`~p2ploader.app.views`: rich terminal views and plain progress lines (the ``cli`` extra).
- :mod:`~p2ploader.app.plots` and :mod:`~p2ploader.app.sim_plots`: PNG plots of swarm runs and of
  simulation sweeps (matplotlib; the ``plot`` extra).
- :mod:`~p2ploader.app.swarmrun`: a swarm of viewer processes (staggered joins, churn) and their
  reports.
- :mod:`~p2ploader.app.viewer`: one viewer process, ``python -m p2ploader.app.viewer SPEC_JSON``,
  as the swarm runner starts it.
- :mod:`~p2ploader.app.simulate`: the ``simulate`` command over :mod:`p2ploader.sim`.
- :mod:`~p2ploader.app.hashplaylist`: ``hash-playlist``, which publishes segment digests for the
  integrity checks.

Submodules are imported explicitly.
"""
