"""Home Assistant over MQTT: discovery, a clip event for every archived clip, "sync now", availability.

``discovery`` builds the retained entity configs, ``state`` reads what they show from the database,
``link`` owns the broker connection (aiomqtt), ``bridge`` wires them to a sync through the pipeline's
observer (``Reporter``), and ``oneshot`` is ``archiver sync`` with all of it.
"""
