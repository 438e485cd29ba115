"""Home Assistant MQTT discovery: topics and the retained config of every entity (pure functions).

One device per account. Per camera: "last clip" (timestamp), "clips archived" and an ``image`` entity
with the last archived thumbnail. Per account: "sync problem" and "login needed" (device class problem),
"last sync", "archive size", "failed clips" and a "sync now" button. Unique ids are built from the base
topic, the account name and Blink's camera id, so they stay the same across restarts and renames.

The image entity uses ``image_topic`` (the JPEG bytes, retained) rather than ``url_topic``: the archive
may be a folder or an S3 bucket that Home Assistant cannot fetch from, and a URL would need a web server
reachable from HA (and, for S3, a presigned URL, which is a secret that expires).
"""

from __future__ import annotations

import json
import re
import unicodedata

from pydantic import BaseModel, ConfigDict

from archiver import __version__
from archiver.config import MqttSettings

ONLINE, OFFLINE = "online", "offline"
PRESS = "PRESS"


def slug(text: str) -> str:
    """Lowercase [a-z0-9_] (topic levels, object ids, entity ids), accents dropped; never empty."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    out = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    return out or "x"


class Publication(BaseModel):
    """One MQTT message to send."""

    model_config = ConfigDict(frozen=True)

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 1


class Topics(BaseModel):
    """Every topic this archiver uses, derived from ``[mqtt]``."""

    discovery_prefix: str
    base: str

    @classmethod
    def from_settings(cls, settings: MqttSettings) -> Topics:
        return cls(discovery_prefix=settings.discovery_prefix, base=settings.base_topic)

    @property
    def uid_prefix(self) -> str:
        return slug(self.base)

    @property
    def availability(self) -> str:
        return f"{self.base}/status"

    def account(self, account: str) -> str:
        return f"{self.base}/{slug(account)}"

    def account_state(self, account: str) -> str:
        return f"{self.account(account)}/state"

    def sync_now(self, account: str) -> str:
        return f"{self.account(account)}/sync_now"

    def clip_event(self, account: str) -> str:
        return f"{self.account(account)}/clip"

    def camera_state(self, account: str, camera_id: int) -> str:
        return f"{self.account(account)}/camera/{camera_id}/state"

    def camera_thumbnail(self, account: str, camera_id: int) -> str:
        return f"{self.account(account)}/camera/{camera_id}/thumbnail"

    def node(self, account: str) -> str:
        return f"{self.uid_prefix}_{slug(account)}"

    def config(self, component: str, account: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node(account)}/{object_id}/config"

    def account_from_command(self, topic: str, accounts: list[str]) -> str | None:
        for name in accounts:
            if topic == self.sync_now(name):
                return name
        return None


# -- discovery payloads (the keys are Home Assistant's) ---------------------------------------------------
class Device(BaseModel):
    identifiers: list[str]
    name: str
    manufacturer: str = "blink-archiver"
    model: str = "Blink clip archive"
    sw_version: str = __version__


class Origin(BaseModel):
    name: str = "blink-archiver"
    sw_version: str = __version__


class EntityConfig(BaseModel):
    name: str
    unique_id: str
    default_entity_id: str | None = None  # set by _entity_ids
    device: Device
    origin: Origin = Origin()
    availability_topic: str
    payload_available: str = ONLINE
    payload_not_available: str = OFFLINE
    qos: int = 1
    icon: str | None = None
    entity_category: str | None = None


class SensorConfig(EntityConfig):
    state_topic: str
    value_template: str
    device_class: str | None = None
    state_class: str | None = None
    unit_of_measurement: str | None = None
    json_attributes_topic: str | None = None
    json_attributes_template: str | None = None


class BinarySensorConfig(EntityConfig):
    state_topic: str
    value_template: str
    device_class: str = "problem"
    payload_on: str = "ON"
    payload_off: str = "OFF"
    json_attributes_topic: str | None = None
    json_attributes_template: str | None = None


class ImageConfig(EntityConfig):
    image_topic: str
    content_type: str = "image/jpeg"


class ButtonConfig(EntityConfig):
    command_topic: str
    payload_press: str = PRESS
    retain: bool = False


AnyConfig = SensorConfig | BinarySensorConfig | ImageConfig | ButtonConfig
COMPONENT: dict[type[BaseModel], str] = {
    SensorConfig: "sensor",
    BinarySensorConfig: "binary_sensor",
    ImageConfig: "image",
    ButtonConfig: "button",
}


class CameraInfo(BaseModel):
    """What discovery needs to know of a camera."""

    id: int
    name: str
    network: str | None = None


def _bool_template(field: str) -> str:
    return (
        f"{{% if value_json.{field} is none %}}None{{% elif value_json.{field} %}}ON"
        f"{{% else %}}OFF{{% endif %}}"
    )


def device(topics: Topics, account: str) -> Device:
    return Device(identifiers=[topics.node(account)], name=f"Blink archiver {account}")


def account_entities(topics: Topics, account: str) -> list[tuple[str, AnyConfig]]:
    """(object id, config) of the account's own entities."""
    dev = device(topics, account)
    node = topics.node(account)
    state = topics.account_state(account)
    common = {"device": dev, "availability_topic": topics.availability}

    def ids(obj: str, component: str) -> dict[str, str]:
        return {"unique_id": f"{node}_{obj}"}

    attrs = {"json_attributes_topic": state, "json_attributes_template": "{{ value_json.details | tojson }}"}
    return _entity_ids(
        [
            (
                "sync_problem",
                BinarySensorConfig(
                    name="Sync problem",
                    state_topic=state,
                    value_template=_bool_template("sync_problem"),
                    **ids("sync_problem", "binary_sensor"),
                    **attrs,
                    **common,
                ),
            ),
            (
                "login_needed",
                BinarySensorConfig(
                    name="Login needed",
                    state_topic=state,
                    value_template=_bool_template("login_needed"),
                    icon="mdi:account-key",
                    **ids("login_needed", "binary_sensor"),
                    **common,
                ),
            ),
            (
                "last_sync",
                SensorConfig(
                    name="Last sync",
                    state_topic=state,
                    value_template="{{ value_json.last_sync }}",
                    device_class="timestamp",
                    icon="mdi:cloud-sync",
                    **ids("last_sync", "sensor"),
                    **common,
                ),
            ),
            (
                "archive_size",
                SensorConfig(
                    name="Archive size",
                    state_topic=state,
                    value_template="{{ value_json.archive_bytes }}",
                    device_class="data_size",
                    state_class="measurement",
                    unit_of_measurement="B",
                    **ids("archive_size", "sensor"),
                    **common,
                ),
            ),
            (
                "failed_clips",
                SensorConfig(
                    name="Failed clips",
                    state_topic=state,
                    value_template="{{ value_json.failed_clips }}",
                    state_class="measurement",
                    icon="mdi:alert-circle-outline",
                    **ids("failed_clips", "sensor"),
                    **common,
                ),
            ),
            (
                "sync_now",
                ButtonConfig(
                    name="Sync now",
                    command_topic=topics.sync_now(account),
                    icon="mdi:sync",
                    **ids("sync_now", "button"),
                    **common,
                ),
            ),
        ]
    )


def camera_entities(topics: Topics, account: str, camera: CameraInfo) -> list[tuple[str, AnyConfig]]:
    """(object id, config) of one camera's entities; the camera's name starts every entity name."""
    dev = device(topics, account)
    node = topics.node(account)
    state = topics.camera_state(account, camera.id)
    common = {"device": dev, "availability_topic": topics.availability}
    cam = f"camera_{camera.id}"

    def ids(obj: str, component: str) -> dict[str, str]:
        return {"unique_id": f"{node}_{cam}_{obj}"}

    return _entity_ids(
        [
            (
                f"{cam}_last_clip",
                SensorConfig(
                    name=f"{camera.name} last clip",
                    state_topic=state,
                    value_template="{{ value_json.last_clip }}",
                    device_class="timestamp",
                    icon="mdi:cctv",
                    json_attributes_topic=state,
                    json_attributes_template="{{ value_json.details | tojson }}",
                    **ids("last_clip", "sensor"),
                    **common,
                ),
            ),
            (
                f"{cam}_clips_archived",
                SensorConfig(
                    name=f"{camera.name} clips archived",
                    state_topic=state,
                    value_template="{{ value_json.clips_archived }}",
                    state_class="measurement",
                    icon="mdi:filmstrip-box-multiple",
                    **ids("clips_archived", "sensor"),
                    **common,
                ),
            ),
            (
                f"{cam}_thumbnail",
                ImageConfig(
                    name=f"{camera.name} last clip thumbnail",
                    image_topic=topics.camera_thumbnail(account, camera.id),
                    **ids("thumbnail", "image"),
                    **common,
                ),
            ),
        ]
    )


def entity_id(component: str, config: EntityConfig) -> str:
    """The entity id Home Assistant gives a discovered entity by default (device name + entity name);
    sent as ``default_entity_id`` too, so the id is the same on every HA version."""
    return f"{component}.{slug(config.device.name + ' ' + config.name)}"


def _entity_ids(entities: list[tuple[str, AnyConfig]]) -> list[tuple[str, AnyConfig]]:
    return [
        (obj, cfg.model_copy(update={"default_entity_id": entity_id(COMPONENT[type(cfg)], cfg)}))
        for obj, cfg in entities
    ]


def image_entity_id(topics: Topics, account: str, camera: CameraInfo) -> str:
    """The camera's thumbnail image entity (in the clip event, so an automation can attach it)."""
    _, image = camera_entities(topics, account, camera)[-1]
    return entity_id("image", image)


def publications(topics: Topics, account: str, entities: list[tuple[str, AnyConfig]]) -> list[Publication]:
    out = []
    for object_id, cfg in entities:
        component = COMPONENT[type(cfg)]
        body = json.dumps(cfg.model_dump(exclude_none=True), sort_keys=True).encode()
        out.append(Publication(topic=topics.config(component, account, object_id), payload=body, retain=True))
    return out
