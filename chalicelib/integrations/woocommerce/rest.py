"""What every client of one WooCommerce store's REST API v3 shares: its URL, credentials and transport."""

from __future__ import annotations

from typing import ClassVar, Unpack

from chalicelib.domain.upstream import UpstreamError
from chalicelib.integrations.http import HttpOptions, Jitter, equal_jitter, transport

API_PATH = "/wp-json/wc/v3"


class WooCommerceRest:
    """One store's REST API v3: `{site}/wp-json/wc/v3`, the consumer key and secret as HTTP basic auth.
    `api_base` replaces the site's origin (HUB_WOOCOMMERCE_API_BASE: the local simulator).

    A client names its base error and its retry defaults (how backoff is spread, the timeout, the longest
    wait); the caller's `options` override them. `_refuse` may turn down what the client cannot use."""

    ERROR: ClassVar[type[UpstreamError]] = UpstreamError
    SPREAD: ClassVar[Jitter] = equal_jitter
    TIMEOUT: ClassVar[float] = 10.0
    MAX_WAIT: ClassVar[float] = 30.0

    def __init__(
        self,
        site_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        api_base: str | None = None,
        **options: Unpack[HttpOptions],
    ) -> None:
        self._base = (api_base or site_url).rstrip("/") + API_PATH
        self._auth = (consumer_key, consumer_secret)
        self._refuse(site_url, self._auth, api_base, options)
        self._http = transport(
            self.ERROR,
            options,
            log="woocommerce retry",
            secrets=(consumer_key, consumer_secret),
            spread=type(self).SPREAD,
            timeout=self.TIMEOUT,
            max_wait=self.MAX_WAIT,
        )

    def _refuse(
        self, site_url: str, auth: tuple[str, str], api_base: str | None, options: HttpOptions
    ) -> None:
        """Raise for a connection this client cannot use (none is refused here)."""

    def __repr__(self) -> str:  # keeps the key and secret out of any log line that prints the object
        return f"{type(self).__name__}({self._base!r})"
