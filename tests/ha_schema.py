"""Home Assistant's MQTT discovery schema for the components we publish, written out for the tests.

Taken from reading Home Assistant's MQTT integration (its per-platform discovery schemas, the shared
entity/availability/device/origin schemas) and its documentation, then written here as plain tables.
Stricter than Home Assistant on purpose: HA silently drops unknown keys, so a misspelt key would go
unnoticed there; here it fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

TOPIC_RE = re.compile(r"^(?P<component>\w+)/(?:(?P<node>[a-zA-Z0-9_-]+)/)?(?P<object>[a-zA-Z0-9_-]+)/config$")
ENTITY_ID_RE = re.compile(r"^(?P<domain>[a-z0-9_]+)\.[a-z0-9_]+$")


def string(v: Any) -> bool:
    return isinstance(v, str)


def optional_string(v: Any) -> bool:
    return v is None or isinstance(v, str)


def boolean(v: Any) -> bool:
    return isinstance(v, bool)


def positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def one_of(*options: Any) -> Check:
    return lambda v: v in options


def subscribe_topic(v: Any) -> bool:
    if not isinstance(v, str) or not v or "\x00" in v or len(v.encode()) > 65535:
        return False
    levels = v.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def publish_topic(v: Any) -> bool:
    return subscribe_topic(v) and "+" not in v and "#" not in v


def icon(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[a-z0-9-]+:[a-z0-9-]+", v) is not None


def template(v: Any) -> bool:
    return isinstance(v, str) and v.count("{{") == v.count("}}") and v.count("{%") == v.count("%}")


def string_list(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))


DEVICE: dict[str, Check] = {
    "identifiers": string_list,
    "connections": lambda v: isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 for p in v),
    "manufacturer": string,
    "model": string,
    "model_id": string,
    "name": string,
    "hw_version": string,
    "serial_number": string,
    "sw_version": string,
    "via_device": string,
    "suggested_area": string,
    "configuration_url": lambda v: (
        isinstance(v, str) and re.match(r"^(https?|homeassistant)://", v) is not None
    ),
}
ORIGIN: dict[str, Check] = {"name": string, "sw_version": string, "support_url": string}
AVAILABILITY_ITEM: dict[str, Check] = {
    "topic": subscribe_topic,
    "payload_available": string,
    "payload_not_available": string,
    "value_template": template,
}

# MQTT_BASE_SCHEMA + MQTT_ENTITY_COMMON_SCHEMA (+ the availability schemas)
COMMON: dict[str, Check] = {
    "qos": one_of(0, 1, 2),
    "encoding": string,
    "availability_topic": subscribe_topic,
    "availability_template": template,
    "availability_mode": one_of("all", "any", "latest"),
    "availability": lambda v: isinstance(v, list),
    "payload_available": string,
    "payload_not_available": string,
    "device": lambda v: isinstance(v, dict),
    "origin": lambda v: isinstance(v, dict),
    "enabled_by_default": boolean,
    "entity_category": one_of("config", "diagnostic"),
    "entity_picture": string,
    "icon": icon,
    "json_attributes_topic": subscribe_topic,
    "json_attributes_template": template,
    "object_id": string,
    "default_entity_id": lambda v: isinstance(v, str) and ENTITY_ID_RE.match(v) is not None,
    "unique_id": string,
    "name": optional_string,
}

SENSOR_DEVICE_CLASSES = {
    "absolute_humidity", "apparent_power", "aqi", "area", "atmospheric_pressure", "battery",
    "blood_glucose_concentration", "carbon_dioxide", "carbon_monoxide", "conductivity", "current",
    "data_rate", "data_size", "date", "distance", "duration", "energy", "energy_distance",
    "energy_storage", "enum", "frequency", "gas", "humidity", "illuminance", "irradiance", "moisture",
    "monetary", "nitrogen_dioxide", "nitrogen_monoxide", "nitrous_oxide", "ozone", "ph", "pm1", "pm10",
    "pm25", "power", "power_factor", "precipitation", "precipitation_intensity", "pressure",
    "reactive_power", "signal_strength", "sound_pressure", "speed", "sulphur_dioxide", "temperature",
    "timestamp", "volatile_organic_compounds", "volatile_organic_compounds_parts", "voltage", "volume",
    "volume_flow_rate", "volume_storage", "water", "weight", "wind_direction", "wind_speed",
}  # fmt: skip
BINARY_SENSOR_DEVICE_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door",
    "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug",
    "power", "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update",
    "vibration", "window",
}  # fmt: skip
DATA_SIZE_UNITS = {
    "bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB",
    "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB",
}  # fmt: skip

COMPONENTS: dict[str, tuple[dict[str, Check], set[str]]] = {
    "sensor": (
        {
            **COMMON,
            "state_topic": subscribe_topic,
            "value_template": template,
            "device_class": lambda v: v is None or v in SENSOR_DEVICE_CLASSES,
            "expire_after": positive_int,
            "force_update": boolean,
            "last_reset_value_template": template,
            "options": lambda v: isinstance(v, list) and len(v) > 0,
            "suggested_display_precision": positive_int,
            "state_class": lambda v: (
                v is None or v in ("measurement", "measurement_angle", "total", "total_increasing")
            ),
            "unit_of_measurement": optional_string,
        },
        {"state_topic"},
    ),
    "binary_sensor": (
        {
            **COMMON,
            "state_topic": subscribe_topic,
            "value_template": template,
            "device_class": lambda v: v is None or v in BINARY_SENSOR_DEVICE_CLASSES,
            "expire_after": positive_int,
            "force_update": boolean,
            "off_delay": positive_int,
            "payload_on": string,
            "payload_off": string,
        },
        {"state_topic"},
    ),
    "image": (
        {
            **COMMON,
            "content_type": string,
            "image_topic": subscribe_topic,
            "url_topic": subscribe_topic,
            "image_encoding": one_of("b64"),
            "url_template": template,
        },
        set(),
    ),
    "button": (
        {
            **COMMON,
            "command_topic": publish_topic,
            "command_template": template,
            "device_class": lambda v: v is None or v in ("identify", "restart", "update"),
            "payload_press": string,
            "retain": boolean,
        },
        {"command_topic"},
    ),
}


def _check_map(where: str, doc: Any, allowed: dict[str, Check], errors: list[str]) -> None:
    if not isinstance(doc, dict):
        errors.append(f"{where}: not a mapping")
        return
    for key, value in doc.items():
        check = allowed.get(key)
        if check is None:
            errors.append(f"{where}: unknown key {key!r}")
        elif not check(value):
            errors.append(f"{where}: bad value for {key!r}: {value!r}")


def validate(component: str, config: dict[str, Any]) -> list[str]:
    """The problems Home Assistant (or this stricter copy) would find in one discovery config."""
    if component not in COMPONENTS:
        return [f"unsupported component {component!r}"]
    allowed, required = COMPONENTS[component]
    errors: list[str] = []
    _check_map(component, config, allowed, errors)
    errors += [f"{component}: missing required key {k!r}" for k in sorted(required - set(config))]
    if "availability_topic" in config and "availability" in config:
        errors.append("availability_topic and availability are exclusive")
    for i, item in enumerate(config.get("availability") or []):
        _check_map(f"availability[{i}]", item, AVAILABILITY_ITEM, errors)
        if isinstance(item, dict) and "topic" not in item:
            errors.append(f"availability[{i}]: missing topic")
    if "device" in config:
        _check_map("device", config["device"], DEVICE, errors)
        dev = config["device"] if isinstance(config["device"], dict) else {}
        if not (dev.get("identifiers") or dev.get("connections")):
            errors.append("device: needs identifiers or connections")
        if "unique_id" not in config:
            errors.append("device info needs a unique_id")
    if "origin" in config:
        _check_map("origin", config["origin"], ORIGIN, errors)
        if "name" not in (config["origin"] or {}):
            errors.append("origin: missing name")
    entity = config.get("default_entity_id")
    if isinstance(entity, str) and not entity.startswith(component + "."):
        errors.append(f"default_entity_id {entity!r} is not in the {component} domain")
    if component == "image":
        topics = [k for k in ("image_topic", "url_topic") if k in config]
        if len(topics) != 1:
            errors.append("image: exactly one of image_topic / url_topic")
        if "content_type" in config and "url_topic" in config:
            errors.append("image: content_type cannot go with url_topic")
    if component == "sensor":
        dc, unit, sc = (
            config.get("device_class"),
            config.get("unit_of_measurement"),
            config.get("state_class"),
        )
        if dc in ("timestamp", "date", "enum") and (unit is not None or sc is not None):
            errors.append(f"sensor: device class {dc} takes no unit and no state class")
        if dc == "data_size" and unit not in DATA_SIZE_UNITS:
            errors.append(f"sensor: unit {unit!r} is not a data_size unit")
        if "last_reset_value_template" in config and sc != "total":
            errors.append("sensor: last_reset_value_template needs state class total")
    return errors


def parse_topic(topic: str, prefix: str = "homeassistant") -> tuple[str, str | None, str] | None:
    """(component, node id, object id) of a discovery topic under ``prefix``, as HA matches it."""
    if not topic.startswith(prefix + "/"):
        return None
    m = TOPIC_RE.match(topic[len(prefix) + 1 :])
    return (m["component"], m["node"], m["object"]) if m else None
