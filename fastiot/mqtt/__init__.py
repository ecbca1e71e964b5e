"""MQTT devices in the workbench, through nats-server's own MQTT listener.

Sparkplug B payloads: :mod:`fastiot.mqtt.sparkplug`; demo devices: :mod:`fastiot.mqtt.devices`.
"""

from __future__ import annotations
