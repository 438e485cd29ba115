"""Home Assistant's MQTT discovery schema for the components we publish, written out for the tests.

Why not HA's own code: the ``homeassistant`` wheel (``pip download --no-deps homeassistant`` gives
2024.3.3, the newest for Python 3.11) holds the schemas in ``homeassistant/components/mqtt/{sensor,
binary_sensor,image,button,event,mixins,abbreviations}.py``, but importing them needs HA's core,
helpers and their pinned dependencies (voluptuous, aiohttp, …): running HA in all but name.

So this follows those files as plain tables: ``KNOWN_KEYS`` is every full key of the 2024.3.3 wheel's
``abbreviations.py`` (what discovery can carry at all) plus what HA added since and its docs describe
(``default_entity_id``, 2025.10; ``via_device``, ``model_id`` of the device schema); the per-platform
tables follow each platform's ``_PLATFORM_SCHEMA_BASE`` (+ ``MQTT_ENTITY_COMMON_SCHEMA``,
``MQTT_RO_SCHEMA``). HA version followed: 2025.10 (the wheel's 2024.3.3 for everything not listed above).
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

# every full key of homeassistant/components/mqtt/abbreviations.py (2024.3.3), ABBREVIATIONS' values
KNOWN_KEYS = {
    "action_template", "action_topic", "activity_state_topic", "activity_value_template",
    "automation_type", "aux_command_topic", "aux_state_template", "aux_state_topic", "availability",
    "availability_mode", "availability_template", "availability_topic", "available_tones",
    "blue_template", "brightness_command_template", "brightness_command_topic", "brightness_scale",
    "brightness_state_topic", "brightness_template", "brightness_value_template", "code_arm_required",
    "code_disarm_required", "code_format", "code_trigger_required", "color_mode",
    "color_mode_state_topic", "color_mode_value_template", "color_temp_command_template",
    "color_temp_command_topic", "color_temp_state_topic", "color_temp_template",
    "color_temp_value_template", "command_off_template", "command_on_template", "command_template",
    "command_topic", "content_type", "current_humidity_template", "current_humidity_topic",
    "current_temperature_template", "current_temperature_topic", "device", "device_class",
    "direction_command_template", "direction_command_topic", "direction_state_topic",
    "direction_value_template", "dock_command_template", "dock_command_topic",
    "effect_command_template", "effect_command_topic", "effect_list", "effect_state_topic",
    "effect_template", "effect_value_template", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "event_types", "expire_after", "fan_mode_command_template",
    "fan_mode_command_topic", "fan_mode_state_template", "fan_mode_state_topic", "fan_speed_list",
    "flash_time_long", "flash_time_short", "force_update", "green_template", "hs_command_template",
    "hs_command_topic", "hs_state_topic", "hs_value_template", "icon", "image_encoding", "image_topic",
    "initial", "json_attributes", "json_attributes_template", "json_attributes_topic",
    "last_reset_topic", "last_reset_value_template", "latest_version_template", "latest_version_topic",
    "max", "max_humidity", "max_mireds", "max_temp", "min", "min_humidity", "min_mireds", "min_temp",
    "mode", "mode_command_template", "mode_command_topic", "mode_state_template", "mode_state_topic",
    "modes", "name", "object_id", "off_delay", "on_command_type", "optimistic", "options", "origin",
    "oscillation_command_template", "oscillation_command_topic", "oscillation_state_topic",
    "oscillation_value_template", "pattern", "pause_command_template", "pause_command_topic", "payload",
    "payload_arm_away", "payload_arm_custom_bypass", "payload_arm_home", "payload_arm_night",
    "payload_arm_vacation", "payload_available", "payload_clean_spot", "payload_close",
    "payload_disarm", "payload_home", "payload_install", "payload_locate", "payload_lock",
    "payload_not_available", "payload_not_home", "payload_off", "payload_on", "payload_open",
    "payload_oscillation_off", "payload_oscillation_on", "payload_pause", "payload_press",
    "payload_reset", "payload_reset_humidity", "payload_reset_mode", "payload_reset_percentage",
    "payload_reset_preset_mode", "payload_return_to_base", "payload_start", "payload_stop",
    "payload_trigger", "payload_turn_off", "payload_turn_on", "payload_unlock",
    "percentage_command_template", "percentage_command_topic", "percentage_state_topic",
    "percentage_value_template", "position_closed", "position_open", "position_template",
    "position_topic", "power_command_template", "power_command_topic", "power_state_template",
    "power_state_topic", "preset_mode_command_template", "preset_mode_command_topic",
    "preset_mode_state_topic", "preset_mode_value_template", "preset_modes", "red_template",
    "release_summary", "release_url", "reports_position", "retain", "rgb_command_template",
    "rgb_command_topic", "rgb_state_topic", "rgb_value_template", "rgbw_command_template",
    "rgbw_command_topic", "rgbw_state_topic", "rgbw_value_template", "rgbww_command_template",
    "rgbww_command_topic", "rgbww_state_topic", "rgbww_value_template", "send_command_topic",
    "send_if_off", "set_fan_speed_topic", "set_position_template", "set_position_topic", "source_type",
    "speed_range_max", "speed_range_min", "start_mowing_command_template", "start_mowing_command_topic",
    "state_class", "state_closed", "state_closing", "state_jammed", "state_locked", "state_locking",
    "state_off", "state_on", "state_open", "state_opening", "state_stopped", "state_template",
    "state_topic", "state_unlocked", "state_unlocking", "state_value_template", "step", "subtype",
    "suggested_display_precision", "support_duration", "support_volume_set", "supported_color_modes",
    "supported_features", "swing_mode_command_template", "swing_mode_command_topic",
    "swing_mode_state_template", "swing_mode_state_topic", "target_humidity_command_template",
    "target_humidity_command_topic", "target_humidity_state_template", "target_humidity_state_topic",
    "temperature_command_template", "temperature_command_topic", "temperature_high_command_template",
    "temperature_high_command_topic", "temperature_high_state_template", "temperature_high_state_topic",
    "temperature_low_command_template", "temperature_low_command_topic",
    "temperature_low_state_template", "temperature_low_state_topic", "temperature_state_template",
    "temperature_state_topic", "temperature_unit", "tilt_closed_value", "tilt_command_template",
    "tilt_command_topic", "tilt_max", "tilt_min", "tilt_opened_value", "tilt_optimistic",
    "tilt_status_template", "tilt_status_topic", "title", "topic", "unique_id", "unit_of_measurement",
    "url_template", "url_topic", "value_template", "white_command_topic", "white_scale",
    "xy_command_template", "xy_command_topic", "xy_state_topic", "xy_value_template"
}  # fmt: skip
KNOWN_KEYS |= {
    "device",
    "origin",
    "default_entity_id",
    "unique_id",
    "name",
    "object_id",
    "qos",
}  # unabbreviated
EVENT_DEVICE_CLASSES = {"button", "doorbell", "motion"}  # homeassistant/components/event EventDeviceClass
# keys an MQTT entity's attributes may not carry (mixins.MQTT_ATTRIBUTES_BLOCKED; event: + event_type(s))
ATTRIBUTES_BLOCKED = {
    "assumed_state", "available", "device_class", "device_info", "entity_category", "entity_picture",
    "entity_registry_enabled_default", "extra_state_attributes", "force_update", "icon", "name",
    "should_poll", "state", "supported_features", "unique_id", "unit_of_measurement", "event_types",
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
    "event": (
        {
            **COMMON,
            "state_topic": subscribe_topic,  # MQTT_RO_SCHEMA
            "value_template": template,
            "device_class": lambda v: v in EVENT_DEVICE_CLASSES,
            "event_types": lambda v: (
                isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) for x in v)
            ),
        },
        {"state_topic", "event_types"},
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
    errors += [f"{component}: {k!r} is no key of HA's MQTT discovery" for k in config if k not in KNOWN_KEYS]
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


def validate_event(config: dict[str, Any], payload: bytes) -> list[str]:
    """The problems HA's MQTT event entity would have with one message (event.py's message_received):
    a JSON object whose ``event_type`` is one of ``event_types``; the rest become its attributes."""
    import json

    try:
        doc = json.loads(payload)
    except ValueError:
        return ["event: payload is not JSON"]
    if not isinstance(doc, dict):
        return ["event: payload is not a JSON object"]
    errors = []
    if doc.get("event_type") not in config.get("event_types", []):
        errors.append(f"event: event_type {doc.get('event_type')!r} not in {config.get('event_types')}")
    errors += [f"event: attribute {k!r} is blocked by HA" for k in doc if k in ATTRIBUTES_BLOCKED]
    return errors


def parse_topic(topic: str, prefix: str = "homeassistant") -> tuple[str, str | None, str] | None:
    """(component, node id, object id) of a discovery topic under ``prefix``, as HA matches it."""
    if not topic.startswith(prefix + "/"):
        return None
    m = TOPIC_RE.match(topic[len(prefix) + 1 :])
    return (m["component"], m["node"], m["object"]) if m else None
