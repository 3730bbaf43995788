"""The payment gate: offers x402 payment for a quote; accepts a payment by verifying, settling, booking it.

Order of work for a paid request (DESIGN §2, §6): decode → verify every field against our own offer →
verify on chain → claim the authorization (unique in our database, and within what the payer's balance
covers besides its settlements in flight) → settle (the intent is stored before the transaction is sent)
→ book the deposit to the payer wallet's credit. Nothing is held or sent upstream before this returns,
and every refusal changes nothing. A settlement that reverts books its gas and fails the intent. When the
chain cannot be reached the answer is a 503 with Retry-After, never a 402 that invites paying again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from aiohttp import web
from opentelemetry.trace import NoOpTracer, Tracer
from pydantic import BaseModel, ConfigDict

from ledger import chart
from proxy.chart_accounts import ChartAccounts
from proxy.faults import crash_if_enabled
from proxy.money import atomic_to_nano_usd
from proxy.payments.booking import (
    book_mined_settlement,
    book_reverted_settlement,
    record_signed_settlement,
)
from proxy.payments.errors import (
    CHAIN_RETRY_AFTER_S,
    PaymentChainUnavailable,
    PaymentMalformed,
    PaymentRequired,
)
from proxy.payments.intents import SettlementIntent, SettlementIntents
from proxy.payments.stored_payment import dump_verified_payment
from proxy.payments.upto import UptoCharge, UptoPayments
from proxy.settings import AssetSettings, Settings
from x402.chain import TokenReader
from x402.codec import decode_payment_header, encode_header
from x402.errors import (
    ChainUnavailable,
    InvalidPayload,
    NonceAlreadyUsed,
    SettlementError,
    SettlementPending,
    SettlementSendFailed,
    TransactionFailed,
    UnsupportedScheme,
    X402Error,
)
from x402.models import (
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
    to_wire,
)
from x402.models import PaymentRequired as PaymentRequiredDocument
from x402.requirements import AcceptedAsset, build_requirements
from x402.settle import Settler, SignedSettlement
from x402.siwx import SiwxPayerMismatch
from x402.upto import is_upto_payment_header
from x402.verify import PayerBalance, VerifiedPayment, verify_payment_offchain, verify_payment_onchain

__all__ = ["AcceptedPayment", "PaymentGate"]

V2_PAYMENT_HEADER = "PAYMENT-SIGNATURE"
V1_PAYMENT_HEADER = "X-PAYMENT"
V2_RESPONSE_HEADER = "PAYMENT-RESPONSE"
V1_RESPONSE_HEADER = "X-PAYMENT-RESPONSE"
PAYMENT_REQUIRED_MESSAGE = "PAYMENT-SIGNATURE header is required"
log = structlog.get_logger("megarouter.payments")


class AcceptedPayment(BaseModel):
    """A settled and booked payment: the payer's credit now holds the paid amount. For `upto`, the signed
    maximum is promised (not settled yet) and `upto` settles the request's real cost once it is captured."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    payer: str
    credit_account: str
    amount_nano_usd: int
    response_headers: dict[str, str]
    upto: UptoCharge | None = None


class PaymentGate:
    def __init__(
        self,
        *,
        settings: Settings,
        settler: Settler,
        token_reader: TokenReader,
        intents: SettlementIntents,
        accounts: ChartAccounts,
        clock_unix_s: Callable[[], float] = time.time,
        tracer: Tracer | None = None,
    ) -> None:
        self._settings = settings
        self._tracer = tracer or NoOpTracer()
        self._settler = settler
        self._token_reader = token_reader
        self._intents = intents
        self._accounts = accounts
        self._clock_unix_s = clock_unix_s
        self._accepted_assets = tuple(
            AcceptedAsset(
                address=asset.address,
                name=asset.eip712_name,
                version=asset.eip712_version,
                decimals=asset.decimals,
            )
            for asset in settings.assets
        )
        self.upto = UptoPayments(
            settings=settings,
            settler=settler,
            token_reader=token_reader,
            intents=intents,
            accounts=accounts,
            assets=self._accepted_assets,
            clock_unix_s=clock_unix_s,
        )

    @property
    def settlement_wallet(self) -> str:
        return self._settler.address

    def asset_settings(self, address: str) -> AssetSettings:
        for asset in self._settings.assets:
            if asset.address.lower() == address.lower():
                return asset
        raise AssertionError(f"a payment in an asset we never offered: {address}")

    def _resource(self, request: web.Request) -> ResourceInfo:
        base = self._settings.public_base_url or f"{request.scheme}://{request.host}"
        return ResourceInfo(
            url=f"{base.rstrip('/')}{request.path}",
            description="MegaRouter: one LLM completion, paid per request",
            mime_type="application/json",
        )

    def _requirements(self, quote_nano_usd: int) -> list[PaymentRequirements]:
        return build_requirements(
            quote_nano_usd=quote_nano_usd,
            chain_id=self._settings.chain_id,
            assets=self._accepted_assets,
            pay_to=self.settlement_wallet,
            max_timeout_s=self._settings.payment_validity_s,
        )

    def payment_required(
        self,
        request: web.Request,
        quote_nano_usd: int,
        *,
        reason: str | None,
        malformed: bool = False,
        upto: bool = False,
    ) -> PaymentRequired:
        """The 402 (or, for a malformed header, 400) carrying the offer for this quote; with `upto`, the
        `upto` offers follow the `exact` ones (a request that pays its own inference, without a key)."""
        accepts = self._requirements(quote_nano_usd)
        if upto:
            accepts += self.upto.requirements(quote_nano_usd)
        document = PaymentRequiredDocument(
            x402_version=2,
            error=reason or PAYMENT_REQUIRED_MESSAGE,
            resource=self._resource(request),
            accepts=accepts,
            extensions={},
        )
        error_type = PaymentMalformed if malformed else PaymentRequired
        return error_type(
            to_wire(document), reason=reason or "payment_required", header_value=encode_header(document)
        )

    @staticmethod
    def carries_payment(request: web.Request) -> bool:
        return V2_PAYMENT_HEADER in request.headers or V1_PAYMENT_HEADER in request.headers

    async def accept(
        self,
        request: web.Request,
        *,
        quote_nano_usd: int,
        request_id: str,
        payer_required: str | None = None,
        upto: bool = False,
    ) -> AcceptedPayment:
        """Settles and books the request's payment, or raises the 402/400 that says why not.

        `payer_required`: the only wallet whose payment is accepted (a signed-in wallet paying its
        shortfall). With `upto` (an inference paid by x402 alone), an `upto` payment is accepted too: its
        maximum is promised to the payer's credit now and the real cost is settled after the inference
        (`.upto`)."""
        v2_header = request.headers.get(V2_PAYMENT_HEADER)
        v1_header = request.headers.get(V1_PAYMENT_HEADER)
        if v2_header is None and v1_header is None:
            raise self.payment_required(request, quote_nano_usd, reason=None, upto=upto)
        try:
            if v2_header is not None and is_upto_payment_header(v2_header):
                if not upto:
                    raise UnsupportedScheme("upto pays inference without an API key, never top-ups")
                accepted = await self.upto.accept(
                    v2_header, quote_nano_usd=quote_nano_usd, request_id=request_id
                )
                return AcceptedPayment(
                    payer=accepted.payer,
                    credit_account=accepted.credit_account,
                    amount_nano_usd=accepted.charge.max_nano_usd,
                    response_headers={},
                    upto=accepted.charge,
                )
            payload: PaymentPayload | PaymentPayloadV1 = (
                decode_payment_header(v2_header, 2)
                if v2_header is not None
                else decode_payment_header(v1_header or "", 1)
            )
            verified = verify_payment_offchain(
                payload, self._requirements(quote_nano_usd), int(self._clock_unix_s())
            )
            if payer_required is not None and verified.payer.lower() != payer_required.lower():
                raise SiwxPayerMismatch(f"the payment comes from {verified.payer}, not the signed-in wallet")
            payer_balance = await verify_payment_onchain(self._token_reader, verified)
            intent = await self._claim(verified, request_id, payer_balance)
            with self._tracer.start_as_current_span(
                "x402 settle",
                attributes={
                    "x402.network": self._settings.network,
                    "x402.asset": verified.asset,
                    "x402.amount_atomic": str(verified.amount_atomic),
                    "x402.settlement_intent_id": intent.id,
                },
            ) as span:
                settle_response = await self._settle_and_book(verified, intent)
                span.set_attribute("x402.transaction", settle_response.transaction)
        except (ChainUnavailable, SettlementSendFailed, SettlementPending) as error:
            # The chain cannot be reached (or did not answer in time): a 402 would invite paying again, while
            # a payment already sent still lands as credit once recovery sees it mined.
            log.warning("payment_chain_unavailable", reason=error.reason, detail=str(error))
            raise PaymentChainUnavailable(
                "the blockchain node cannot be reached right now; retry later (a payment already sent "
                "will be kept as credit of the paying wallet)",
                retry_after_s=CHAIN_RETRY_AFTER_S,
            ) from error
        except InvalidPayload as error:
            log.info("payment_malformed", reason=error.reason)
            raise self.payment_required(
                request, quote_nano_usd, reason=error.reason, malformed=True, upto=upto
            ) from error
        except X402Error as error:
            log.info("payment_refused", reason=error.reason, detail=str(error))
            raise self.payment_required(request, quote_nano_usd, reason=error.reason, upto=upto) from error
        header_name = V2_RESPONSE_HEADER if payload.x402_version == 2 else V1_RESPONSE_HEADER
        asset = self.asset_settings(verified.asset)
        return AcceptedPayment(
            payer=verified.payer.lower(),
            credit_account=chart.credit_wallet(verified.payer),
            amount_nano_usd=atomic_to_nano_usd(verified.amount_atomic, decimals=asset.decimals),
            response_headers={header_name: encode_header(settle_response)},
        )

    async def _claim(
        self, verified: VerifiedPayment, request_id: str, payer_balance: PayerBalance
    ) -> SettlementIntent:
        intent = await self._intents.claim(
            network=verified.requirements.network,
            asset=verified.asset,
            payer=verified.payer,
            authorization_nonce=verified.authorization.nonce,
            value_atomic=verified.amount_atomic,
            valid_before_unix_s=verified.authorization.valid_before,
            verified_payment_json=dump_verified_payment(verified),
            request_id=request_id,
            payer_balance=payer_balance,
        )
        if intent is None:
            # Another request holds this very authorization, or already settled it.
            raise NonceAlreadyUsed("authorization was already submitted")
        return intent

    async def _settle_and_book(self, verified: VerifiedPayment, intent: SettlementIntent) -> SettleResponse:
        signed_seen = False

        async def record_signed(signed: SignedSettlement) -> None:
            nonlocal signed_seen
            await record_signed_settlement(self._intents, intent.id, signed)
            signed_seen = True
            crash_if_enabled(self._settings.fault_injection, "after_settlement_signed")

        try:
            result = await self._settler.settle(verified, before_send=record_signed)
        except (SettlementPending, SettlementSendFailed):
            # The transaction may still be mined: the intent stays open and recovery finishes it (the payer's
            # money then lands as credit). Marking it failed here could let the same authorization in twice.
            raise
        except TransactionFailed as error:
            await book_reverted_settlement(
                self._intents,
                self._accounts,
                intent.id,
                error,
                network=verified.requirements.network,
                settlement_wallet=self.settlement_wallet,
            )
            raise
        except SettlementError as error:
            await self._intents.record_failed(intent.id, reason=error.reason)
            raise
        except X402Error as error:
            if signed_seen:
                raise  # Not reached today: after signing, the settler raises only SettlementErrors.
            # Refused before anything was signed (the re-check found the authorization used or the funds
            # gone, or the chain unreachable): nothing can reach the chain, so the reservation is released.
            await self._intents.record_failed(intent.id, reason=error.reason)
            raise
        crash_if_enabled(self._settings.fault_injection, "after_settlement_mined")
        await book_mined_settlement(
            self._intents,
            self._accounts,
            intent.id,
            result,
            asset=self.asset_settings(verified.asset),
            settlement_wallet=self.settlement_wallet,
        )
        log.info(
            "payment_settled",
            payer=verified.payer,
            amount_atomic=verified.amount_atomic,
            tx_hash=result.tx_hash,
            asset=verified.asset,
        )
        return result.to_settle_response()
