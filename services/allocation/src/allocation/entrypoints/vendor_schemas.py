"""HTTP bodies of registration, login, profiles and eligibility claims (allocation's v1)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from allocation.domain.eligibility import Claim, ClaimKind, ClaimStatus, Eligibility
from allocation.domain.identity import IDENTITY_NUMBER_PATTERN, identity_number_problem
from allocation.domain.model import PriorityGroup, Vendor
from allocation.entrypoints.schemas import Strict
from contracts.catalogue import Category
from contracts.text import IsoDate, PlainText
from stallkit.clock import MARKET_TZ

Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^1[3-9]\d{9}$"),
    Field(description="Mainland China mobile number.", examples=["13800138000"]),
]


def _valid_identity_number(number: str) -> str:
    problem = identity_number_problem(number)
    if problem is not None:
        raise ValueError(problem)
    return number


IdentityNumber = Annotated[
    str,
    StringConstraints(pattern=IDENTITY_NUMBER_PATTERN),
    AfterValidator(_valid_identity_number),
    Field(
        description=(
            "Resident identity number (居民身份证号码): 17 digits and the ISO 7064 MOD 11-2 "
            "check character. Kept only as a salted hash: one account per person."
        ),
        examples=["440402199001011236"],
    ),
]
RegistrationId = Annotated[
    str,
    Field(
        pattern=r"^rg_[0-9a-f]{16}$",
        description="Registration id.",
        examples=["rg_9f86d081884c7d65"],
    ),
]
VendorId = Annotated[
    str,
    Field(
        pattern=r"^vd_[0-9A-Za-z_]{1,40}$", description="Vendor id.", examples=["vd_3c59dc048e88"]
    ),
]
ClaimId = Annotated[
    str,
    Field(pattern=r"^cl_[0-9a-f]{16}$", description="Claim id.", examples=["cl_5d41402abc4b2a76"]),
]
DocumentRef = Annotated[
    PlainText,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Field(
        description="Reference of the document checked (certificate or file number).",
        examples=["珠香民证 2026-001234"],
    ),
]
#: The priority groups a vendor may claim (``none`` is no claim).
ClaimedGroup = Literal["laid_off", "low_income", "college_student"]


def _local(when: dt.datetime | None) -> dt.datetime | None:
    return when.astimezone(MARKET_TZ) if when else None


class VendorRegistration(Strict):
    """Body of ``POST /v1/vendors``.

    The priority group, categories and health certificate are *claims*: they count only once
    district staff or an administrator verified them.
    """

    name: Annotated[
        PlainText, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)
    ] = Field(examples=["陈小梅"])
    phone: Phone
    password: str = Field(min_length=8, max_length=128, examples=["correct horse battery"])
    identity_number: IdentityNumber
    priority_group: PriorityGroup = Field(
        default=PriorityGroup.NONE, description="Claimed priority group (none: no claim)."
    )
    categories: list[Category] = Field(
        min_length=1, max_length=5, description="Claimed stall category permits."
    )
    health_certificate_expires: IsoDate | None = Field(
        default=None,
        description="Claimed expiry of the health certificate (cooked food needs one verified).",
    )


class RegistrationView(BaseModel):
    """Answer to ``POST /v1/vendors``: the same for every number, registered or not."""

    registration_id: str = Field(examples=["rg_9f86d081884c7d65"])
    expires_in: int = Field(description="Seconds the SMS code is valid.", examples=[600])


class RegistrationCode(Strict):
    """Body of ``POST /v1/vendors/verify``: the code the SMS carried."""

    registration_id: RegistrationId
    code: str = Field(pattern=r"^[0-9]{6}$", description="The 6-digit code.", examples=["042917"])


class ClaimView(BaseModel):
    """One eligibility claim and what staff decided."""

    id: str = Field(examples=["cl_5d41402abc4b2a76"])
    kind: ClaimKind
    value: str = Field(
        description="The group, the category, or the certificate's expiry date as stated.",
        examples=["cooked_food"],
    )
    status: ClaimStatus
    claimed_at: dt.datetime
    document_ref: str | None = Field(description="Document checked (set by staff).")
    expires: dt.date | None = Field(description="Last date a verification counts; null: never.")
    reason: str | None = Field(description="Why it was rejected or revoked.")
    decided_by: str | None = Field(description="Staff member who decided.")
    decided_at: dt.datetime | None

    @classmethod
    def of(cls, claim: Claim) -> ClaimView:
        """The view of ``claim``."""
        return cls(
            id=claim.id,
            kind=claim.kind,
            value=claim.value,
            status=claim.status,
            claimed_at=claim.claimed_at.astimezone(MARKET_TZ),
            document_ref=claim.document_ref,
            expires=claim.expires,
            reason=claim.reason,
            decided_by=claim.decided_by,
            decided_at=_local(claim.decided_at),
        )


class VendorProfile(BaseModel):
    """A vendor's own profile; the phone number is masked.

    ``priority_group``, ``categories`` and ``health_certificate_expires`` are what counts
    today: verified claims only. ``claims`` lists everything stated, with its status and, for a
    rejection, the reason.
    """

    id: str
    name: str
    phone_masked: str = Field(examples=["138****8000"])
    priority_group: PriorityGroup = Field(description="Verified priority group (none: standard).")
    categories: list[Category] = Field(description="Categories with a verified permit.")
    health_certificate_expires: dt.date | None = Field(
        description="Expiry of the verified health certificate."
    )
    suspended_until: dt.datetime | None = Field(description="Booking is suspended until then.")
    no_shows_last_30_days: int
    claims: list[ClaimView] = Field(description="Every eligibility claim, oldest first.")

    @classmethod
    def of(
        cls, vendor: Vendor, no_shows: int, now: dt.datetime, claims: list[Claim]
    ) -> VendorProfile:
        """The profile of ``vendor``."""
        suspended = vendor.suspended_until
        return cls(
            id=vendor.id,
            name=vendor.name,
            phone_masked=mask(vendor.phone),
            priority_group=vendor.priority_group,
            categories=sorted(vendor.categories),
            health_certificate_expires=vendor.health_certificate_expires,
            suspended_until=suspended if suspended and suspended > now else None,
            no_shows_last_30_days=no_shows,
            claims=[ClaimView.of(c) for c in claims],
        )


def mask(phone: str) -> str:
    """``138****8000``."""
    return phone[:3] + "****" + phone[-4:]


class TokenResponse(BaseModel):
    """OAuth2 bearer token."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


# --- claims ------------------------------------------------------------------------------------


class PriorityGroupClaim(Strict):
    """Claim a priority group."""

    kind: Literal["priority_group"]
    value: ClaimedGroup = Field(examples=["laid_off"])


class CategoryClaim(Strict):
    """Claim a stall category permit."""

    kind: Literal["category"]
    value: Category


class HealthCertificateClaim(Strict):
    """Claim a health certificate, by its expiry date."""

    kind: Literal["health_certificate"]
    value: IsoDate


NewClaim = Annotated[
    PriorityGroupClaim | CategoryClaim | HealthCertificateClaim, Field(discriminator="kind")
]


class VerifyClaim(Strict):
    """Verify a claim: the document checked, and when the verification stops counting."""

    decision: Literal["verified"]
    document_ref: DocumentRef
    expires: IsoDate | None = Field(
        default=None,
        description=(
            "Last date it counts (null: no expiry; a health certificate defaults to the "
            "expiry the vendor stated)."
        ),
    )


class RejectClaim(Strict):
    """Reject a pending claim, or revoke a verified one, with a reason the vendor sees."""

    decision: Literal["rejected"]
    reason: Annotated[
        PlainText, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ] = Field(examples=["证明材料已过期 The certificate has expired"])
    document_ref: DocumentRef | None = None


ClaimDecision = Annotated[VerifyClaim | RejectClaim, Field(discriminator="decision")]


class PermitView(BaseModel):
    """A verified category permit."""

    category: Category
    expires: dt.date | None = Field(description="Last date it counts; null: no expiry.")


class EligibilityView(BaseModel):
    """What counts for a vendor today: verified claims only."""

    priority_group: PriorityGroup
    priority_group_expires: dt.date | None
    categories: list[PermitView]
    health_certificate_expires: dt.date | None

    @classmethod
    def of(cls, eligibility: Eligibility) -> EligibilityView:
        """The view of ``eligibility``."""
        return cls(
            priority_group=eligibility.priority_group,
            priority_group_expires=eligibility.priority_until,
            categories=[
                PermitView(category=c, expires=u) for c, u in sorted(eligibility.categories.items())
            ],
            health_certificate_expires=eligibility.health_until,
        )


class VendorClaimsView(BaseModel):
    """A vendor's claims as staff see them."""

    vendor_id: str
    name: str
    phone_masked: str
    eligibility: EligibilityView
    claims: list[ClaimView]


class QueuedClaimView(ClaimView):
    """A claim in the staff work queue."""

    vendor_id: str
    vendor_name: str


class ClaimPage(BaseModel):
    """One page of a claims queue."""

    items: list[QueuedClaimView]
    total: int
    limit: int
    offset: int
    next_offset: int | None
