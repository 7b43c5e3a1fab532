"""Settings of the reporting service (environment variables prefixed ``REPORTING_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stallkit.settings import CommonSettings, Mode


class ReportingSettings(CommonSettings):
    """The shared settings plus what aggregates and district feeds need."""

    model_config = SettingsConfigDict(
        env_prefix="REPORTING_", extra="ignore", populate_by_name=True
    )

    token_audience: ClassVar[str] = "reporting"

    service_name: str = "reporting"
    feed_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="How long a district feed keeps its entries (resumable positions).",
    )
    consumer_group: str = Field(
        default="reporting",
        pattern=r"^[a-z][a-z0-9-]{0,40}$",
        description=(
            "Kafka consumer group of the aggregates and feeds (under the topic prefix). A new "
            "group with a new Redis prefix rebuilds everything from the topics."
        ),
    )
    report_retention_days: int = Field(
        default=400,
        ge=1,
        description="How long the facts reports are computed from are kept (days).",
    )
    feed_heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often an idle SSE feed stream sends a comment line (keeps proxies open).",
    )
    feed_queue_size: int = Field(
        default=1000,
        ge=1,
        description=(
            "Live entries an SSE client may have waiting; a client that falls further behind is "
            "dropped (it resumes with Last-Event-ID) so that it never slows the others."
        ),
    )
    feed_send_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long one write to an SSE client may block before the stream is closed.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a webhook delivery may take before it failed."
    )
    webhook_retry_initial_seconds: float = Field(
        default=1.0, gt=0, description="Wait after a webhook's first failed attempt (doubling)."
    )
    webhook_retry_max_delay_seconds: float = Field(
        default=600.0, gt=0, description="The longest wait between two webhook attempts."
    )
    webhook_max_retry_seconds: float = Field(
        default=3 * 24 * 3600.0,
        gt=0,
        description="How long a failing webhook is retried before its subscription is paused.",
    )
    webhook_poll_seconds: float = Field(
        default=0.15, gt=0, description="How often an idle webhook looks for new feed entries."
    )
    webhook_scan_seconds: float = Field(
        default=1.0, gt=0, description="How often subscriptions are looked up (new, resumed)."
    )
    webhook_lease_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A replica's hold on a subscription's deliveries, renewed while it lives.",
    )
    webhook_log_length: int = Field(
        default=1000, ge=1, description="Delivery attempts kept per webhook subscription."
    )
    webhook_loopback_only: bool | None = Field(
        default=None,
        description=(
            "Accept webhook URLs on loopback hosts only; by default true in development mode "
            "(nothing is sent off the machine) and false in production."
        ),
    )
    webhook_max_per_district: int = Field(
        default=20, ge=1, description="Webhook subscriptions a feed may have."
    )

    def webhooks_loopback_only(self) -> bool:
        """Whether webhook URLs must name a loopback host (see ``webhook_loopback_only``)."""
        if self.webhook_loopback_only is None:
            return self.mode is Mode.DEV
        return self.webhook_loopback_only
