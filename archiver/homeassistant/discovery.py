"""Home Assistant MQTT discovery: topics and the retained config of every entity (pure functions).

Following HA's MQTT discovery documentation: one device per account ("Blink archiver <account>") with
the diagnostics (``entity_category: diagnostic``) "sync problem", "login needed", "last sync", "failed
clips", "archive size" (MB, one decimal) and, only when ``archiver run`` listens, a "sync now" button.
One device per camera (``via_device`` the account's device) with "last clip" (timestamp), "clips
archived", an ``image`` with the last archived thumbnail and an ``event`` entity ("clip", fired once per
stored clip). ``configuration_url`` opens the web UI when ``[server] public_url`` is set. In one-shot mode
(a CronJob) the states carry ``expire_after``, so a CronJob that stopped shows "unavailable".

Unique ids are built from the base topic, the account name and Blink's camera id, so they stay the same
across restarts and renames; the entity ids (``default_entity_id``) are the ones earlier versions had.

The image entity uses ``image_topic`` (the JPEG bytes, retained) rather than ``url_topic``: the archive
may be a folder or an S3 bucket that Home Assistant cannot fetch from, and a URL would need a web server
reachable from HA (and, for S3, a presigned URL, which is a secret that expires).
"""

from __future__ import annotations

import json
import re
import unicodedata
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from archiver import __version__
from archiver.config import MqttSettings, Settings

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

    def camera_event(self, account: str, camera_id: int) -> str:
        """The camera's ``event`` entity: one message (not retained) per stored clip."""
        return f"{self.account(account)}/camera/{camera_id}/event"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth and last-will topic (``online`` when HA (re)starts)."""
        return f"{self.discovery_prefix}/status"

    @property
    def own_configs(self) -> str:
        """Every node-style discovery config (subscribed to read back what an earlier run announced)."""
        return f"{self.discovery_prefix}/+/+/+/config"

    def node_of_config(self, topic: str) -> str | None:
        """The node id of one of our discovery config topics, else None."""
        parts = topic.split("/")
        prefix = self.discovery_prefix.split("/")
        if len(parts) != len(prefix) + 4 or parts[: len(prefix)] != prefix or parts[-1] != "config":
            return None
        node = parts[len(prefix) + 1]
        return node if node.startswith(self.uid_prefix + "_") else None

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
DIAGNOSTIC = "diagnostic"


class Device(BaseModel):
    identifiers: list[str]
    name: str
    manufacturer: str = "blink-archiver"
    model: str = "Blink clip archive"
    sw_version: str = __version__
    via_device: str | None = None
    configuration_url: str | None = None


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
    suggested_display_precision: int | None = None
    expire_after: int | None = None
    json_attributes_topic: str | None = None
    json_attributes_template: str | None = None


class BinarySensorConfig(EntityConfig):
    state_topic: str
    value_template: str
    device_class: str = "problem"
    payload_on: str = "ON"
    payload_off: str = "OFF"
    expire_after: int | None = None
    json_attributes_topic: str | None = None
    json_attributes_template: str | None = None


class ImageConfig(EntityConfig):
    image_topic: str
    content_type: str = "image/jpeg"


class ButtonConfig(EntityConfig):
    command_topic: str
    payload_press: str = PRESS
    retain: bool = False


class EventConfig(EntityConfig):
    """HA's MQTT ``event``: the JSON payload's ``event_type`` is one of ``event_types``; every other key
    becomes an attribute of the event."""

    state_topic: str
    event_types: list[str]
    device_class: str | None = None


AnyConfig = SensorConfig | BinarySensorConfig | ImageConfig | ButtonConfig | EventConfig
COMPONENT: dict[type[BaseModel], str] = {
    SensorConfig: "sensor",
    BinarySensorConfig: "binary_sensor",
    ImageConfig: "image",
    ButtonConfig: "button",
    EventConfig: "event",
}
CLIP_EVENT_TYPE = "clip"


class CameraInfo(BaseModel):
    """What discovery needs to know of a camera."""

    id: int
    name: str
    network: str | None = None
    account_id: int | None = None  # the account's row id (the web UI's camera page)


class Links(BaseModel):
    """Pages of the web UI under ``[server] public_url`` (None when it is not set: no links)."""

    public_url: str | None = None

    def _join(self, path: str) -> str | None:
        return f"{self.public_url.rstrip('/')}{path}" if self.public_url else None

    def home(self) -> str | None:
        return self._join("/")

    def camera(self, camera: CameraInfo) -> str | None:
        if camera.account_id is None:
            return self.home()
        return self._join(f"/camera/{camera.account_id}/{camera.id}")

    def clip(self, key: str | None) -> str | None:
        """The clip's page by its archive key, which a reindex keeps (the row id may change)."""
        return self._join(f"/clip/key/{quote(key)}") if key else None


class Mode(BaseModel):
    """How the process runs: ``archiver run`` listens to the button; a one-shot sync's states expire."""

    listening: bool = True  # the "sync now" button is offered
    expire_after: int | None = None  # seconds; set in one-shot mode
    links: Links = Links()
    last_person: bool = False  # a tag detector (person, onnx) is on: "<camera> last person"
    silence: bool = False  # the silence watch is on: "<camera> silent"
    sync_module_alerts: bool = False  # ... for Sync Modules: "Sync Module offline", "USB storage inactive"


def tags_person(settings: Settings) -> bool:
    """A configured detector can tag a person: ``person``, or ``onnx`` whose allow-list keeps it."""
    analysis = settings.analysis
    if not analysis.enabled:
        return False
    if "person" in analysis.detectors:
        return True
    return "onnx" in analysis.detectors and (not analysis.onnx.allow or "person" in analysis.onnx.allow)


def _bool_template(field: str) -> str:
    return (
        f"{{% if value_json.{field} is none %}}None{{% elif value_json.{field} %}}ON"
        f"{{% else %}}OFF{{% endif %}}"
    )


def device(topics: Topics, account: str, mode: Mode | None = None) -> Device:
    url = (mode or Mode()).links.home()
    return Device(identifiers=[topics.node(account)], name=f"Blink archiver {account}", configuration_url=url)


def camera_device(topics: Topics, account: str, camera: CameraInfo, mode: Mode | None = None) -> Device:
    return Device(
        identifiers=[f"{topics.node(account)}_camera_{camera.id}"],
        name=camera.name,
        model="Blink camera (archived clips)",
        via_device=topics.node(account),
        configuration_url=(mode or Mode()).links.camera(camera),
    )


def account_entities(topics: Topics, account: str, mode: Mode | None = None) -> list[tuple[str, AnyConfig]]:
    """(object id, config) of the account's own entities."""
    mode = mode or Mode()
    dev = device(topics, account, mode)
    node = topics.node(account)
    state = topics.account_state(account)
    common = {"device": dev, "availability_topic": topics.availability}
    diag = {**common, "entity_category": DIAGNOSTIC, "expire_after": mode.expire_after}
    id_base = dev.name

    def ids(obj: str) -> dict[str, str]:
        return {"unique_id": f"{node}_{obj}"}

    attrs = {"json_attributes_topic": state, "json_attributes_template": "{{ value_json.details | tojson }}"}
    entities: list[tuple[str, AnyConfig]] = [
        (
            "sync_problem",
            BinarySensorConfig(
                name="Sync problem",
                state_topic=state,
                value_template=_bool_template("sync_problem"),
                **ids("sync_problem"),
                **attrs,
                **diag,
            ),
        ),
        (
            "login_needed",
            BinarySensorConfig(
                name="Login needed",
                state_topic=state,
                value_template=_bool_template("login_needed"),
                icon="mdi:account-key",
                **ids("login_needed"),
                **diag,
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
                **ids("last_sync"),
                **diag,
            ),
        ),
        (
            "archive_size",
            SensorConfig(
                name="Archive size",
                state_topic=state,
                value_template="{{ (value_json.archive_bytes / 1000000) | round(3) }}",
                device_class="data_size",
                state_class="measurement",
                unit_of_measurement="MB",  # HA converts data_size units: GB is a click away
                suggested_display_precision=1,
                **ids("archive_size"),
                **diag,
            ),
        ),
        (
            "failed_clips",
            SensorConfig(
                name="Failed clips",
                state_topic=state,
                value_template="{{ value_json.failed_clips }}",
                state_class="measurement",
                suggested_display_precision=0,
                icon="mdi:alert-circle-outline",
                **ids("failed_clips"),
                **diag,
            ),
        ),
    ]
    if mode.sync_module_alerts:  # the silence watch (archiver.silence), from the homescreen
        entities += [
            (
                "sync_module_offline",
                BinarySensorConfig(
                    name="Sync Module offline",
                    state_topic=state,
                    value_template=_bool_template("sync_module_offline"),
                    icon="mdi:router-wireless-off",
                    **ids("sync_module_offline"),
                    **diag,
                ),
            ),
            (
                "usb_inactive",
                BinarySensorConfig(
                    name="USB storage inactive",
                    state_topic=state,
                    value_template=_bool_template("usb_inactive"),
                    icon="mdi:usb-flash-drive-outline",
                    **ids("usb_inactive"),
                    **diag,
                ),
            ),
        ]
    if mode.listening:
        entities.append(
            (
                "sync_now",
                ButtonConfig(
                    name="Sync now",
                    command_topic=topics.sync_now(account),
                    icon="mdi:sync",
                    **ids("sync_now"),
                    **common,
                ),
            )
        )
    return _entity_ids(entities, id_base)


def camera_entities(
    topics: Topics, account: str, camera: CameraInfo, mode: Mode | None = None
) -> list[tuple[str, AnyConfig]]:
    """(object id, config) of one camera's entities, on the camera's own device."""
    mode = mode or Mode()
    dev = camera_device(topics, account, camera, mode)
    node = topics.node(account)
    state = topics.camera_state(account, camera.id)
    common = {"device": dev, "availability_topic": topics.availability}
    cam = f"camera_{camera.id}"
    # the entity ids earlier versions had (account device name + camera name + entity name)
    id_base = f"{device(topics, account).name} {camera.name}"

    def ids(obj: str) -> dict[str, str]:
        return {"unique_id": f"{node}_{cam}_{obj}"}

    extra: list[tuple[str, AnyConfig]] = []
    if mode.last_person:
        extra.append(
            (
                f"{cam}_last_person",
                SensorConfig(
                    name="Last person",
                    state_topic=state,
                    value_template="{{ value_json.last_person }}",
                    device_class="timestamp",
                    icon="mdi:walk",
                    expire_after=mode.expire_after,
                    **ids("last_person"),
                    **common,
                ),
            )
        )
    if mode.silence:
        extra.append(
            (
                f"{cam}_silent",
                BinarySensorConfig(
                    name="Silent",
                    state_topic=state,
                    value_template=_bool_template("silent"),
                    device_class="problem",
                    icon="mdi:cctv-off",
                    expire_after=mode.expire_after,
                    **ids("silent"),
                    **common,
                ),
            )
        )
    return _entity_ids(
        [
            (
                f"{cam}_last_clip",
                SensorConfig(
                    name="Last clip",
                    state_topic=state,
                    value_template="{{ value_json.last_clip }}",
                    device_class="timestamp",
                    icon="mdi:cctv",
                    json_attributes_topic=state,
                    json_attributes_template="{{ value_json.details | tojson }}",
                    expire_after=mode.expire_after,
                    **ids("last_clip"),
                    **common,
                ),
            ),
            (
                f"{cam}_clips_archived",
                SensorConfig(
                    name="Clips archived",
                    state_topic=state,
                    value_template="{{ value_json.clips_archived }}",
                    state_class="measurement",
                    suggested_display_precision=0,
                    icon="mdi:filmstrip-box-multiple",
                    expire_after=mode.expire_after,
                    **ids("clips_archived"),
                    **common,
                ),
            ),
            (
                f"{cam}_thumbnail",
                ImageConfig(
                    name="Last clip thumbnail",
                    image_topic=topics.camera_thumbnail(account, camera.id),
                    **ids("thumbnail"),
                    **common,
                ),
            ),
            (
                f"{cam}_clip",
                EventConfig(
                    name="Clip",
                    state_topic=topics.camera_event(account, camera.id),
                    event_types=[CLIP_EVENT_TYPE],
                    device_class="motion",
                    icon="mdi:filmstrip",
                    **ids("clip_event"),
                    **common,
                ),
            ),
            *extra,
        ],
        id_base,
    )


def entity_id(component: str, id_base: str, name: str) -> str:
    """The entity id sent as ``default_entity_id`` (the same on every HA version)."""
    return f"{component}.{slug(id_base + ' ' + name)}"


def _entity_ids(entities: list[tuple[str, AnyConfig]], id_base: str) -> list[tuple[str, AnyConfig]]:
    return [
        (
            obj,
            cfg.model_copy(
                update={"default_entity_id": entity_id(COMPONENT[type(cfg)], id_base, cfg.name.lower())}
            ),
        )
        for obj, cfg in entities
    ]


def _find(entities: list[tuple[str, AnyConfig]], kind: type[EntityConfig]) -> EntityConfig:
    return next(cfg for _, cfg in entities if isinstance(cfg, kind))


def image_entity_id(topics: Topics, account: str, camera: CameraInfo) -> str:
    """The camera's thumbnail image entity (in the clip event, so an automation can attach it)."""
    image = _find(camera_entities(topics, account, camera), ImageConfig)
    assert image.default_entity_id is not None
    return image.default_entity_id


def event_entity_id(topics: Topics, account: str, camera: CameraInfo) -> str:
    event = _find(camera_entities(topics, account, camera), EventConfig)
    assert event.default_entity_id is not None
    return event.default_entity_id


def config_topic(topics: Topics, account: str, object_id: str, cfg: AnyConfig) -> str:
    return topics.config(COMPONENT[type(cfg)], account, object_id)


def publications(topics: Topics, account: str, entities: list[tuple[str, AnyConfig]]) -> list[Publication]:
    out = []
    for object_id, cfg in entities:
        body = json.dumps(cfg.model_dump(exclude_none=True), sort_keys=True).encode()
        topic = config_topic(topics, account, object_id, cfg)
        out.append(Publication(topic=topic, payload=body, retain=True))
    return out


def is_our_config(topics: Topics, topic: str, payload: bytes) -> bool:
    """A retained discovery config this archiver (with this base topic) published, now or in an earlier
    run: the node is ours and the payload names our origin and unique-id prefix."""
    if topics.node_of_config(topic) is None or not payload:
        return False
    try:
        doc = json.loads(payload)
    except ValueError:
        return False
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("origin"), dict)
        and doc["origin"].get("name") == Origin().name
        and str(doc.get("unique_id", "")).startswith(topics.uid_prefix + "_")
    )
