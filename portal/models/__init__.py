"""All models, importable from one place."""
# ruff: noqa: F401

from portal.models.auth import RecoveryCode, SignInFailure, UserSession
from portal.models.base import utcnow
from portal.models.catalog import (
    AccountAddOn,
    AddOn,
    LicenseUsage,
    Plan,
    PlanLicense,
    Subscription,
    SubscriptionStatus,
    TopupProduct,
)
from portal.models.documents import Receipt, ReceiptCounter
from portal.models.invoicing import (
    CreditChangeKind,
    CreditLimitChange,
    CreditNote,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
    PaymentAllocation,
    UnallocatedPayment,
)
from portal.models.ledger import EntryKind, GrantStatus, LedgerEntry, ReserveGrant, ReserveUse
from portal.models.notifications import (
    FundsCheck,
    JobLease,
    MailStatus,
    Notice,
    OutboxEmail,
    RedeemFailure,
)
from portal.models.payments import (
    PAID_STATUSES,
    AttemptStatus,
    AutoRechargeAttempt,
    AutoRechargeSetting,
    CardRole,
    Payment,
    PaymentCard,
    PaymentDispute,
    PaymentPurpose,
    PaymentRefund,
    PaymentStatus,
    RefundStatus,
    WebhookEvent,
)
from portal.models.tenancy import (
    Account,
    AccountStatus,
    ApiCharge,
    ApiToken,
    AuditLog,
    BillingModel,
    CustomerClass,
    Reseller,
    Role,
    ServerSetting,
    TransferSetting,
    User,
)
from portal.models.vouchers import (
    BatchStatus,
    CardCode,
    CardCodeCharge,
    CardCodeRecharge,
    CardStatus,
    TopupCard,
    TopupCardBatch,
)

__all__ = [name for name in dir() if not name.startswith("_")]
