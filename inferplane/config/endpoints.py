"""Endpoints: where a model is served, how it scales, what it costs and how fast it must be."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .autoscaling import AutoscalingPolicy
from .fields import AzureResourceId, HttpUrl, Slug, StrictModel, SubscriptionId

__all__ = [
    "AzureContainerAppTarget",
    "AzureMLTarget",
    "AzureOpenAITarget",
    "Endpoint",
    "GpuHourPrice",
    "KubernetesTarget",
    "LocalTarget",
    "Price",
    "Target",
    "TokenPrice",
]

Port = Annotated[int, Field(ge=1, le=65535)]


class LocalTarget(StrictModel):
    """Replicas of the bundled inference service on this machine."""

    kind: Literal["local"]
    model: str = Field(min_length=1, description="Hugging Face model id or local path (GGUF too).")
    ports: tuple[Port, Port] | None = Field(
        None, description="[first, last] port for replicas; None lets the launcher pick free ports."
    )
    router_url: HttpUrl = Field(
        "http://127.0.0.1:8100", description="The router (inferplane router) that owns the replicas."
    )
    replica_settings: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Settings of each replica's inference service (inference.settings.ServiceSettings), "
            "e.g. {max_batch_size: 4, max_queue: 4}; not model, endpoint, replica (the router "
            "sets them) nor api_keys, api_keys_file, redis_url (secrets: environment only)."
        ),
    )

    ROUTER_SETS: ClassVar[frozenset[str]] = frozenset({"model", "endpoint", "replica"})
    SECRETS: ClassVar[frozenset[str]] = frozenset({"api_keys", "api_keys_file", "redis_url"})

    @staticmethod
    def replica_setting(key: str, value: Any) -> Any:
        """``value`` checked (and converted) as the replica setting ``key``; ``ValueError``
        naming the problem when the key is not a setting a config may give, or the value
        does not fit it. Shared by the config and ``inferplane router --replica-setting``."""
        from inference.settings import ServiceSettings

        if key in LocalTarget.ROUTER_SETS:
            raise ValueError(f"{key} is not a replica setting here: the router sets it for each replica")
        if key in LocalTarget.SECRETS:
            raise ValueError(f"{key} holds a secret: set INFERPLANE_{key.upper()} in the environment instead")
        info = ServiceSettings.model_fields.get(key)
        if info is None:
            off_limits = LocalTarget.ROUTER_SETS | LocalTarget.SECRETS
            allowed = sorted(ServiceSettings.model_fields.keys() - off_limits)
            raise ValueError(f"unknown replica setting {key!r}; expected one of: {', '.join(allowed)}")
        kind: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        try:
            return TypeAdapter(kind).validate_python(value)
        except ValidationError as error:
            raise ValueError(error.errors(include_url=False)[0]["msg"]) from None

    @field_validator("replica_settings")
    @classmethod
    def _known_replica_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        checked = {}
        for key, value in settings.items():
            try:
                checked[key] = cls.replica_setting(key, value)
            except ValueError as error:
                # "at" points the loader at the key: endpoints[i].target.replica_settings.<key>.
                raise PydanticCustomError(
                    "replica_setting", "{problem}", {"problem": str(error), "at": [key]}
                ) from None
        return checked

    @model_validator(mode="after")
    def _ports_ordered(self) -> LocalTarget:
        if self.ports is not None and self.ports[0] > self.ports[1]:
            raise PydanticCustomError(
                "port_range",
                "first port {first} is above last port {last}",
                {"first": self.ports[0], "last": self.ports[1], "at": ["ports"]},
            )
        return self


class KubernetesTarget(StrictModel):
    """A Deployment whose replica count the autoscaler sets."""

    kind: Literal["kubernetes"]
    namespace: str = Field(min_length=1)
    deployment: str = Field(min_length=1)
    context: str | None = Field(None, description="kubeconfig context; None uses the current one.")


class AzureContainerAppTarget(StrictModel):
    """An Azure Container App whose min/max replicas the autoscaler sets."""

    kind: Literal["azure_container_app"]
    subscription_id: SubscriptionId
    resource_group: str = Field(min_length=1)
    app_name: str = Field(min_length=1)


class AzureMLTarget(StrictModel):
    """A deployment of an Azure Machine Learning managed online endpoint."""

    kind: Literal["azure_ml"]
    subscription_id: SubscriptionId
    resource_group: str = Field(min_length=1)
    workspace: str = Field(min_length=1)
    endpoint: str = Field(min_length=1)
    deployment: str = Field(min_length=1)


class AzureOpenAITarget(StrictModel):
    """An Azure OpenAI deployment: observed and priced, not scaled by replica count."""

    kind: Literal["azure_openai"]
    resource_id: AzureResourceId
    deployment: str = Field(min_length=1)


Target = Annotated[
    LocalTarget | KubernetesTarget | AzureContainerAppTarget | AzureMLTarget | AzureOpenAITarget,
    Field(discriminator="kind"),
]


class GpuHourPrice(StrictModel):
    """Priced by the GPU hour: cost = replicas x gpus_per_replica x gpu_per_hour_usd x hours."""

    TAG: ClassVar[str] = "gpu_hour"
    gpu_per_hour_usd: float = Field(gt=0)
    gpus_per_replica: int = Field(1, ge=1)

    @property
    def replica_hour_usd(self) -> float:
        """What one replica costs per hour."""
        return self.gpu_per_hour_usd * self.gpus_per_replica


class TokenPrice(StrictModel):
    """Priced by the token, as hosted APIs bill: USD per 1,000 input and output tokens."""

    TAG: ClassVar[str] = "per_token"
    input_per_1k_usd: float = Field(ge=0)
    output_per_1k_usd: float = Field(ge=0)


def _price_kind(value: Any) -> str | None:
    # The two price kinds share no key, so the keys present decide; both or neither is
    # ambiguous and gets one clear error instead of two confusing "field required" ones.
    if isinstance(value, GpuHourPrice | TokenPrice):
        return value.TAG
    if not isinstance(value, dict):
        return None
    per_gpu = bool(value.keys() & GpuHourPrice.model_fields.keys())
    per_token = bool(value.keys() & TokenPrice.model_fields.keys())
    if per_gpu == per_token:
        return None
    return GpuHourPrice.TAG if per_gpu else TokenPrice.TAG


Price = Annotated[
    Annotated[GpuHourPrice, Tag(GpuHourPrice.TAG)] | Annotated[TokenPrice, Tag(TokenPrice.TAG)],
    Discriminator(
        _price_kind,
        custom_error_type="price_kind",
        custom_error_message=(
            "expected exactly one price kind, not both or neither: gpu_per_hour_usd "
            "(with optional gpus_per_replica) or input_per_1k_usd and output_per_1k_usd"
        ),
    ),
]


class Endpoint(StrictModel):
    """One inference endpoint: a target, replica bounds, a price and latency targets."""

    name: Slug
    target: Target
    min_replicas: int = Field(1, ge=0, description="0 allows scale to zero.")
    max_replicas: int = Field(1, ge=1, validate_default=True)
    price: Price
    latency_target_seconds: float | None = Field(None, gt=0, description="p95 request latency target.")
    ttft_target_seconds: float | None = Field(None, gt=0, description="p95 time-to-first-token target.")
    autoscaling: AutoscalingPolicy | None = Field(None, description="None: the autoscaler leaves it alone.")

    @field_validator("max_replicas")
    @classmethod
    def _max_not_below_min(cls, max_replicas: int, info: ValidationInfo) -> int:
        # A field validator (not a model one) so that this check still runs, and is still
        # reported, when another field of the same endpoint is wrong.
        min_replicas = info.data.get("min_replicas")
        if min_replicas is not None and min_replicas > max_replicas:
            raise PydanticCustomError(
                "replica_bounds",
                "min_replicas ({min}) must not exceed max_replicas ({max})",
                {"min": min_replicas, "max": max_replicas},
            )
        return max_replicas

    @model_validator(mode="after")
    def _autoscaling_fits(self) -> Endpoint:
        policy = self.autoscaling
        if policy is None:
            return self
        if isinstance(self.target, AzureOpenAITarget):
            raise PydanticCustomError(
                "autoscaling",
                "an azure_openai target is observed and priced, not scaled; remove autoscaling",
                {"at": ["autoscaling"]},
            )
        floors: list[tuple[list[str | int], int]] = [
            (["autoscaling", "off_hours_replicas"], policy.off_hours_replicas)
        ]
        floors += [
            (["autoscaling", "schedules", i, "min_replicas"], w.min_replicas)
            for i, w in enumerate(policy.schedules)
            if w.min_replicas is not None
        ]
        for where, floor in floors:
            if floor > self.max_replicas:
                raise PydanticCustomError(
                    "replica_bounds",
                    "{where} ({floor}) exceeds max_replicas ({max})",
                    {
                        "where": ".".join(map(str, where)),
                        "floor": floor,
                        "max": self.max_replicas,
                        "at": where,
                    },
                )
        return self

    @model_validator(mode="after")
    def _ports_fit_replicas(self) -> Endpoint:
        ports = self.target.ports if isinstance(self.target, LocalTarget) else None
        if ports is not None and ports[1] - ports[0] + 1 < self.max_replicas:
            # "at" points the loader at the field to blame, so the line number is right.
            raise PydanticCustomError(
                "replica_bounds",
                "port range {first}-{last} has room for {room} replicas but max_replicas is {max}",
                {
                    "first": ports[0],
                    "last": ports[1],
                    "room": ports[1] - ports[0] + 1,
                    "max": self.max_replicas,
                    "at": ["target", "ports"],
                },
            )
        return self
