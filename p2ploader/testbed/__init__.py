"""A network testbed: viewers, origin and tracker in network namespaces on one bridge, with
uplinks and downlinks shaped in the kernel (``tbf``). Needs root; see ``docs/testbed.md``.

- :mod:`~p2ploader.testbed.links`: link rates and ranges (``--uplink 1-20mbit``).
- :mod:`~p2ploader.testbed.netns`: :class:`~p2ploader.testbed.netns.Testbed`, the namespaces,
  links and their cleanup.
"""
