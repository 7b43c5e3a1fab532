"""Allocation's Redis key layout.

Every key allocation owns carries the ``{alloc}`` hash tag, so a Redis Cluster keeps them in one
slot: the one-body-one-place rule needs one atomic decision across markets (a vendor's bookings
in two markets), and allocation's data (1,489 stalls, their bookings, vendors) is small enough
for one shard. The Lua scripts take every key they touch in ``KEYS`` (built here), never build
one from a prefix, so a cluster client routes them and Redis can check they share the slot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key builder under a deployment prefix (empty in production, per-test in tests)."""

    prefix: str = ""

    @property
    def base(self) -> str:
        """Prefix of every allocation key."""
        return f"{self.prefix}alloc:{{alloc}}:"

    def k(self, *parts: str) -> str:
        """Key from parts under the base."""
        return self.base + ":".join(parts)

    def outbox(self) -> str:
        """The outbox stream."""
        return self.k("outbox")

    def market(self, market_id: str) -> str:
        """JSON of a market."""
        return self.k("market", market_id)

    def markets(self) -> str:
        """Set of market ids."""
        return self.k("markets")

    def stall(self, stall_id: str) -> str:
        """Hash of a stall: market, category, active, code_version, json."""
        return self.k("stall", stall_id)

    def market_stalls(self, market_id: str) -> str:
        """Set of a market's stall ids."""
        return self.k("mstalls", market_id)

    def window(self, market_id: str, window_id: str) -> str:
        """Hash with the signature of a market window."""
        return self.k("window", market_id, window_id)

    def catalogue_version(self) -> str:
        """Counter bumped by every catalogue change."""
        return self.k("catalogue_version")

    def suspended(self, market_id: str, day: str) -> str:
        """Reason a market is suspended on a date."""
        return self.k("suspended", market_id, day)

    def suspensions(self, market_id: str) -> str:
        """Hash suspension id -> JSON of the suspension."""
        return self.k("suspensions", market_id)

    def vendor(self, vendor_id: str) -> str:
        """Hash of a vendor."""
        return self.k("vendor", vendor_id)

    def phone(self, phone: str) -> str:
        """Phone number -> vendor id (uniqueness)."""
        return self.k("phone", phone)

    def eligibility_claims(self, vendor_id: str) -> str:
        """Hash claim id -> JSON of a vendor's eligibility claims (``domain.eligibility``)."""
        return self.k("claims", vendor_id)

    def claims_in_status(self, status: str) -> str:
        """Sorted set ``vendor|claim`` of every vendor's claims in a status (the staff work
        queue), by when they entered it."""
        return self.k("claimq", status)

    def identity(self, digest: str) -> str:
        """Salted digest of a resident identity number -> vendor id (one account per person)."""
        return self.k("identity", digest)

    def registration(self, registration_id: str) -> str:
        """Hash of a registration waiting for its phone code (expires with it)."""
        return self.k("registration", registration_id)

    def registrations_counted(self, scope: str, value: str) -> str:
        """Registrations counted for a client address or a phone number in the current period."""
        return self.k("regcount", scope, value)

    def login_attempts(self, scope: str, *values: str) -> str:
        """Login attempts counted in the current period for a ``scope``: ``pair`` (a client
        address and a phone number, in that order), ``address`` or ``number``."""
        return self.k("loginfail", scope, *values)

    def login_addresses(self, phone: str) -> str:
        """Sorted set of the client addresses a number logged in from, by last success."""
        return self.k("loginknown", phone)

    def booking(self, booking_id: str) -> str:
        """Hash of a booking."""
        return self.k("booking", booking_id)

    def claim(self, stall_id: str, day: str, window_id: str) -> str:
        """The active booking id holding a stall for a window."""
        return self.k("claim", stall_id, day, window_id)

    def idempotency(self, vendor_id: str, idempotency_key: str) -> str:
        """Hash hash/booking: what a vendor's Idempotency-Key was first used for."""
        return self.k("idem", vendor_id, idempotency_key)

    def vendor_attempts(self, vendor_id: str) -> str:
        """Hash minute/n: a vendor's booking attempts in the current minute (the rate limit)."""
        return self.k("vattempts", vendor_id)

    def vendor_week(self, vendor_id: str, iso_week: str) -> str:
        """Set of a vendor's booking ids counted toward one ISO week's cap."""
        return self.k("vweek", vendor_id, iso_week)

    def vendor_active(self, vendor_id: str) -> str:
        """Hash of a vendor's active bookings: booking id -> "start_ts,end_ts" (overlap check)."""
        return self.k("vactive", vendor_id)

    def vendor_bookings(self, vendor_id: str) -> str:
        """Sorted set of a vendor's booking ids by start time."""
        return self.k("vbookings", vendor_id)

    def window_bookings(self, market_id: str, day: str, window_id: str) -> str:
        """Set of booking ids made for a window occurrence."""
        return self.k("wbookings", market_id, day, window_id)

    def window_counts(self, market_id: str, day: str, window_id: str) -> str:
        """Hash priority/standard -> active bookings of a window occurrence."""
        return self.k("wcount", market_id, day, window_id)

    def no_shows(self, vendor_id: str) -> str:
        """Sorted set of a vendor's no-shows by time."""
        return self.k("noshows", vendor_id)

    def draw(self, market_id: str, day: str, window_id: str) -> str:
        """Hash of a window occurrence's draw: state, seed, commitment, salt, draw_at, inputs,
        result (see ``draw_store``)."""
        return self.k("draw", market_id, day, window_id)

    def draw_applications(self, market_id: str, day: str, window_id: str) -> str:
        """Hash vendor id -> application JSON of a window occurrence's draw."""
        return self.k("dapps", market_id, day, window_id)

    def draw_outcomes(self, market_id: str, day: str, window_id: str) -> str:
        """Hash vendor id -> what the draw gave them (JSON): a booking, nothing, or void."""
        return self.k("doutcomes", market_id, day, window_id)

    def draw_lock(self, market_id: str, day: str, window_id: str) -> str:
        """Lease of the replica running a draw."""
        return self.k("dlock", market_id, day, window_id)

    def draws_due(self) -> str:
        """Sorted set of scheduled draws (``market|date|window``) by draw time."""
        return self.k("draws", "due")

    def vendor_applications(self, vendor_id: str) -> str:
        """Hash ``market|date|window`` -> window span "start_ts,end_ts" of a vendor's
        applications (overlap and weekly-cap checks, and the vendor's list)."""
        return self.k("vapps", vendor_id)

    def vendor_draw_history(self, vendor_id: str) -> str:
        """Sorted set of the draws a vendor applied to (``market|date|window``) by draw time."""
        return self.k("vdraws", vendor_id)
