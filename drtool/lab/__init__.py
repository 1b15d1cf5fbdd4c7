"""The local lab: real sshd nodes in Linux namespaces, simulated K3s and Flux, a lab API server.

Nothing outside this package knows it is talking to the lab. Import submodules explicitly
(``drtool.lab.nodes``, ``drtool.lab.api``...); this package imports nothing on purpose.
"""
