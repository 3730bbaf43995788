"""The Ledger: double-entry bookkeeping with holds, on an async SQLAlchemy engine passed in.

Semantics follow TigerBeetle: balanced transactions, pending transfers (holds) resolved exactly once,
must-not-go-negative accounts, idempotent writes. Every write locks the accounts it touches in ascending id
order (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the BEGIN IMMEDIATE of `create_ledger_engine`
serializes writers), re-reads the cached balances under the lock, checks limits, then inserts entries and
updates the cached balances in the same database transaction. A fixed lock order means no deadlocks.

This module must not import `proxy` or `x402`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.errors import (
    AccountConflict,
    AccountNotFound,
    CaptureExceedsHold,
    DuplicateExternalRef,
    HoldAlreadyResolved,
    HoldExpired,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    UnitMismatch,
)
from ledger.postings import body_hash, normal_balance, outgoing_pending, validate_postings, would_go_negative
from ledger.tables import ledger_metadata
from ledger.types import (
    INT64_MAX,
    AccountFlags,
    AccountInfo,
    AccountType,
    Balance,
    CaptureRequest,
    Hold,
    HoldRequest,
    HoldState,
    LedgerTransaction,
    Metadata,
    Posting,
    PostingLine,
    PostRequest,
    Statement,
    StatementLine,
    TrialBalance,
    TrialBalanceRow,
    VoidRequest,
)

__all__ = ["EXPIRE_BATCH_MAX", "STATEMENT_LINES_MAX", "Ledger", "unix_ms_now"]

ACCOUNTS = ledger_metadata.tables["ledger_accounts"]
TRANSACTIONS = ledger_metadata.tables["ledger_transactions"]
ENTRIES = ledger_metadata.tables["ledger_entries"]
HOLDS = ledger_metadata.tables["ledger_holds"]
RESOLUTIONS = ledger_metadata.tables["ledger_hold_resolutions"]

EXPIRE_BATCH_MAX = 1_000
STATEMENT_LINES_MAX = 10_000
SUM_COLUMNS = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")

Row = sa.RowMapping
T = TypeVar("T")
Sums = dict[str, int]


def unix_ms_now() -> int:
    return time.time_ns() // 1_000_000


class Ledger:
    """Accounts, balanced transactions, holds and balances on one engine (SQLite or PostgreSQL).

    `clock` returns the current time in unix milliseconds; tests pass a fake one to drive expiry.
    """

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], int] = unix_ms_now) -> None:
        assert engine.dialect.name in ("sqlite", "postgresql"), engine.dialect.name
        self._engine = engine
        self._clock = clock
        self._lock_rows = engine.dialect.name == "postgresql"
        # Account names and units never change once created, so caching them per instance is safe.
        self._names_by_id: dict[int, tuple[str, str]] = {}

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # ----------------------------------------------------------------------------------------- accounts

    async def ensure_account(
        self, name: str, *, type: AccountType, unit: str, flags: AccountFlags = AccountFlags.NONE
    ) -> AccountInfo:
        """Open the account, or return it when it exists with the same type, unit and flags."""
        assert name
        assert len(name) <= 255
        assert unit
        assert len(unit) <= 32
        for attempt in range(2):
            try:
                async with self._engine.begin() as conn:
                    row = await self._account_row(conn, name)
                    if row is None:
                        await conn.execute(
                            ACCOUNTS.insert().values(
                                name=name,
                                type=type.value,
                                unit=unit,
                                flags=int(flags),
                                created_at_unix_ms=self._clock(),
                                **dict.fromkeys(SUM_COLUMNS, 0),
                            )
                        )
                        row = await self._account_row(conn, name)
                        assert row is not None
            except IntegrityError:
                if attempt == 1:
                    raise
                continue  # Another writer opened it first; the next round reads and compares it.
            info = _account_info(row)
            if (info.type, info.unit, info.flags) != (type, unit, flags):
                raise AccountConflict(
                    f"account {name} exists as {info.type}/{info.unit}/flags={int(info.flags)}, "
                    f"not {type}/{unit}/flags={int(flags)}"
                )
            return info
        raise AssertionError("unreachable")

    async def account(self, name: str) -> AccountInfo:
        async with self._engine.connect() as conn:
            row = await self._account_row(conn, name)
        if row is None:
            raise AccountNotFound(name)
        return _account_info(row)

    async def accounts(self) -> list[AccountInfo]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(ACCOUNTS).order_by(ACCOUNTS.c.name))).mappings().all()
        return [_account_info(row) for row in rows]

    # ------------------------------------------------------------------------------------- transactions

    async def post(
        self,
        *,
        idempotency_key: str,
        code: str,
        postings: Sequence[Posting | tuple[str, int]],
        external_ref: str | None = None,
        metadata: Metadata | None = None,
    ) -> LedgerTransaction:
        """Book a balanced transaction. Positive amounts debit, negative amounts credit.

        Replaying the key with the same body returns the first result; another body raises
        IdempotencyConflict. An external_ref already booked under another key raises DuplicateExternalRef.
        """
        request = PostRequest(
            idempotency_key=idempotency_key,
            code=code,
            postings=tuple(
                p if isinstance(p, Posting) else Posting(account=p[0], amount=p[1]) for p in postings
            ),
            external_ref=external_ref,
            metadata=metadata or {},
        )
        digest = body_hash(request.model_dump(mode="json", exclude={"idempotency_key"}))
        names = sorted({p.account for p in request.postings})
        for attempt in range(2):
            try:
                return await self._after_lazy_expiry(
                    names, lambda conn: self._post_in(conn, request, digest, names)
                )
            except IntegrityError:
                if attempt == 1:
                    raise
                # A concurrent writer inserted the same key or external_ref; the retry replays or refuses.
        raise AssertionError("unreachable")

    async def _post_in(
        self, conn: AsyncConnection, request: PostRequest, digest: str, names: list[str]
    ) -> LedgerTransaction:
        existing = await self._one(
            conn, TRANSACTIONS, TRANSACTIONS.c.idempotency_key == request.idempotency_key
        )
        if existing is not None:
            _check_replay(existing, digest, request.idempotency_key)
            return await self._load_transaction(conn, existing)
        accounts = await self._lock_accounts_by_name(conn, names)
        validate_postings(request.postings, {name: row["unit"] for name, row in accounts.items()})
        if request.external_ref is not None:
            other = await self._one(conn, TRANSACTIONS, TRANSACTIONS.c.external_ref == request.external_ref)
            if other is not None:
                raise DuplicateExternalRef(
                    f"external_ref {request.external_ref} is already booked as transaction {other['id']}"
                )
        new_sums = {name: _sums(row) for name, row in accounts.items()}
        for posting in request.postings:
            side = "debits_posted" if posting.amount > 0 else "credits_posted"
            new_sums[posting.account][side] += abs(posting.amount)
        for name, sums in new_sums.items():
            _check_limits(accounts[name], sums)
        transaction_id = await self._insert_transaction(
            conn,
            idempotency_key=request.idempotency_key,
            digest=digest,
            code=request.code,
            external_ref=request.external_ref,
            metadata=request.metadata,
            hold_id=None,
            entries=[(accounts[p.account]["id"], p.amount) for p in request.postings],
        )
        for name, sums in new_sums.items():
            await self._write_sums(conn, accounts[name]["id"], sums)
        row = await self._one(conn, TRANSACTIONS, TRANSACTIONS.c.id == transaction_id)
        assert row is not None
        return await self._load_transaction(conn, row)

    async def get_transaction(self, transaction_id: int) -> LedgerTransaction | None:
        return await self._find_transaction(TRANSACTIONS.c.id == transaction_id)

    async def transaction_by_external_ref(self, external_ref: str) -> LedgerTransaction | None:
        return await self._find_transaction(TRANSACTIONS.c.external_ref == external_ref)

    async def transaction_by_idempotency_key(self, idempotency_key: str) -> LedgerTransaction | None:
        return await self._find_transaction(TRANSACTIONS.c.idempotency_key == idempotency_key)

    async def _find_transaction(self, where: sa.ColumnElement[bool]) -> LedgerTransaction | None:
        async with self._engine.connect() as conn:
            row = await self._one(conn, TRANSACTIONS, where)
            return None if row is None else await self._load_transaction(conn, row)

    async def transactions(self, *, after_id: int = 0, limit: int = 1_000) -> list[LedgerTransaction]:
        """Transactions in id order, paged by `after_id`."""
        assert 0 < limit <= STATEMENT_LINES_MAX
        async with self._engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(TRANSACTIONS)
                        .where(TRANSACTIONS.c.id > after_id)
                        .order_by(TRANSACTIONS.c.id)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
            return [await self._load_transaction(conn, row) for row in rows]

    # -------------------------------------------------------------------------------------------- holds

    async def hold(
        self,
        *,
        idempotency_key: str,
        debit_account: str,
        credit_account: str,
        amount: int,
        timeout_s: float,
        code: str = "hold",
        metadata: Metadata | None = None,
    ) -> Hold:
        """Reserve `amount` from debit_account towards credit_account until captured, voided or expired.

        The reserved amount counts against debit_account's available balance at once, so concurrent holds
        on one must-not-go-negative account can never together exceed what it holds.
        """
        request = HoldRequest(
            idempotency_key=idempotency_key,
            code=code,
            debit_account=debit_account,
            credit_account=credit_account,
            amount=amount,
            timeout_s=timeout_s,
            metadata=metadata or {},
        )
        if debit_account == credit_account:
            raise InvalidAmount("a hold needs two different accounts")
        digest = body_hash(request.model_dump(mode="json", exclude={"idempotency_key"}))
        names = sorted({debit_account, credit_account})
        for attempt in range(2):
            try:
                return await self._after_lazy_expiry(
                    names, lambda conn: self._hold_in(conn, request, digest, names)
                )
            except IntegrityError:
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def _hold_in(
        self, conn: AsyncConnection, request: HoldRequest, digest: str, names: list[str]
    ) -> Hold:
        existing = await self._one(conn, HOLDS, HOLDS.c.idempotency_key == request.idempotency_key)
        if existing is not None:
            _check_replay(existing, digest, request.idempotency_key)
            return await self._hold_model(conn, existing)
        accounts = await self._lock_accounts_by_name(conn, names)
        debit, credit = accounts[request.debit_account], accounts[request.credit_account]
        if debit["unit"] != credit["unit"]:
            raise UnitMismatch(
                f"{request.debit_account} is in {debit['unit']}, {request.credit_account} in {credit['unit']}"
            )
        debit_sums, credit_sums = _sums(debit), _sums(credit)
        debit_sums["debits_pending"] += request.amount
        credit_sums["credits_pending"] += request.amount
        _check_limits(debit, debit_sums)
        _check_limits(credit, credit_sums)
        now = self._clock()
        result = await conn.execute(
            HOLDS.insert().values(
                idempotency_key=request.idempotency_key,
                body_hash=digest,
                code=request.code,
                debit_account_id=debit["id"],
                credit_account_id=credit["id"],
                amount=request.amount,
                metadata_json=request.metadata,
                created_at_unix_ms=now,
                expires_at_unix_ms=now + max(1, round(request.timeout_s * 1000)),
                state=HoldState.PENDING.value,
            )
        )
        hold_id = _inserted_id(result)
        await self._write_sums(conn, debit["id"], debit_sums)
        await self._write_sums(conn, credit["id"], credit_sums)
        # The row as inserted (JSON metadata reads back as written): no need to read it back.
        row = {
            "id": hold_id,
            "idempotency_key": request.idempotency_key,
            "code": request.code,
            "debit_account_id": debit["id"],
            "credit_account_id": credit["id"],
            "amount": request.amount,
            "metadata_json": request.metadata,
            "created_at_unix_ms": now,
            "expires_at_unix_ms": now + max(1, round(request.timeout_s * 1000)),
            "state": HoldState.PENDING.value,
            "captured_amount": None,
            "resolved_at_unix_ms": None,
            "resolution_transaction_id": None,
        }
        return await self._hold_model(conn, row)

    async def capture(
        self, hold_id: int, amount: int, *, idempotency_key: str, credit_account: str | None = None
    ) -> Hold:
        """Post `amount` (≤ held) of a pending hold and release the rest. Resolves the hold.

        `credit_account` sends the captured amount to another account of the same unit than the one the
        hold named (a request held against one provider may be served by another after failover); the
        reservation on the debit account is what the hold guaranteed, and it is unchanged.
        """
        request = CaptureRequest(idempotency_key=idempotency_key, hold_id=hold_id, amount=amount)
        body: dict[str, Any] = {"op": "capture", "hold_id": hold_id, "amount": amount}
        if credit_account is not None:
            body["credit_account"] = credit_account
        return await self._resolve(
            request.hold_id, HoldState.CAPTURED, request.amount, request.idempotency_key, body,
            credit_account=credit_account,
        )

    async def void(self, hold_id: int, *, idempotency_key: str) -> Hold:
        """Release a pending hold in full. Resolves the hold."""
        request = VoidRequest(idempotency_key=idempotency_key, hold_id=hold_id)
        body = {"op": "void", "hold_id": hold_id}
        return await self._resolve(request.hold_id, HoldState.VOIDED, 0, request.idempotency_key, body)

    async def _resolve(
        self,
        hold_id: int,
        kind: HoldState,
        amount: int,
        idempotency_key: str,
        body: dict[str, Any],
        *,
        credit_account: str | None = None,
    ) -> Hold:
        digest = body_hash(body)
        for attempt in range(2):
            try:
                async with self._engine.begin() as conn:
                    outcome = await self._resolve_in(
                        conn, hold_id, kind, amount, idempotency_key, digest, credit_account=credit_account
                    )
                break
            except IntegrityError:
                if attempt == 1:
                    raise
        else:
            raise AssertionError("unreachable")
        if outcome.state is HoldState.EXPIRED and kind is not HoldState.EXPIRED:
            # The expiry itself was committed above; the caller still learns that its resolution failed.
            raise HoldExpired(f"hold {hold_id} expired at {outcome.expires_at_unix_ms} unix ms")
        return outcome

    async def _resolve_in(
        self,
        conn: AsyncConnection,
        hold_id: int,
        kind: HoldState,
        amount: int,
        idempotency_key: str,
        digest: str,
        *,
        credit_account: str | None = None,
    ) -> Hold:
        existing = await self._one(conn, RESOLUTIONS, RESOLUTIONS.c.idempotency_key == idempotency_key)
        if existing is not None:
            _check_replay(existing, digest, idempotency_key)
            row = await self._one(conn, HOLDS, HOLDS.c.id == existing["hold_id"])
            assert row is not None
            return await self._hold_model(conn, row)
        hold = await self._one(conn, HOLDS, HOLDS.c.id == hold_id)
        if hold is None:
            raise HoldNotFound(f"hold {hold_id}")
        target_id = hold["credit_account_id"]
        if credit_account is not None:
            target = await self._account_row(conn, credit_account)
            if target is None:
                raise AccountNotFound(credit_account)
            target_id = target["id"]
        accounts = await self._lock_accounts_by_id(
            conn, sorted({hold["debit_account_id"], hold["credit_account_id"], target_id})
        )
        if accounts[target_id]["unit"] != accounts[hold["credit_account_id"]]["unit"]:
            raise UnitMismatch(f"capture of hold {hold_id} into {credit_account}: another unit")
        if self._lock_rows:
            # Read again under the row lock, taken after the account locks (the fixed lock order). On
            # SQLite, BEGIN IMMEDIATE already serialized this transaction before the first read.
            hold = await self._one(conn, HOLDS, HOLDS.c.id == hold_id, for_update=True)
            assert hold is not None
        if hold["state"] != HoldState.PENDING.value:
            raise HoldAlreadyResolved(f"hold {hold_id} is already {hold['state']}")
        now = self._clock()
        if hold["expires_at_unix_ms"] <= now:
            kind, amount, idempotency_key = HoldState.EXPIRED, 0, _expire_key(hold_id)
            digest = body_hash({"op": "expire", "hold_id": hold_id})
        elif amount > hold["amount"]:
            raise CaptureExceedsHold(f"capture of {amount} exceeds hold {hold_id} of {hold['amount']}")
        resolved = await self._apply_resolution(
            conn, hold, accounts, kind, amount, idempotency_key, digest, now, target_id=target_id
        )
        return await self._hold_model(conn, resolved)

    async def _apply_resolution(
        self,
        conn: AsyncConnection,
        hold: Row,
        accounts: Mapping[int, Row],
        kind: HoldState,
        amount: int,
        idempotency_key: str,
        digest: str,
        now: int,
        *,
        target_id: int | None = None,
    ) -> dict[str, Any]:
        """Resolve a pending hold; returns its row as updated (the caller need not read it back)."""
        assert kind is not HoldState.PENDING
        assert 0 <= amount <= hold["amount"]
        debit, credit = accounts[hold["debit_account_id"]], accounts[hold["credit_account_id"]]
        target = accounts[target_id] if target_id is not None else credit
        sums = {row["id"]: _sums(row) for row in (debit, credit, target)}
        sums[debit["id"]]["debits_pending"] -= hold["amount"]
        sums[credit["id"]]["credits_pending"] -= hold["amount"]
        sums[debit["id"]]["debits_posted"] += amount
        sums[target["id"]]["credits_posted"] += amount
        for row in {row["id"]: row for row in (debit, credit, target)}.values():
            _check_limits(row, sums[row["id"]], releasing=True)
        transaction_id: int | None = None
        if amount > 0:
            transaction_id = await self._insert_transaction(
                conn,
                idempotency_key=f"hold:{hold['id']}:capture",
                digest=digest,
                code=hold["code"],
                external_ref=None,
                metadata=hold["metadata_json"],
                hold_id=hold["id"],
                entries=[(debit["id"], amount), (target["id"], -amount)],
            )
        await conn.execute(
            RESOLUTIONS.insert().values(
                hold_id=hold["id"],
                idempotency_key=idempotency_key,
                body_hash=digest,
                kind=kind.value,
                amount=amount,
                transaction_id=transaction_id,
                created_at_unix_ms=now,
            )
        )
        updated = await conn.execute(
            HOLDS.update()
            .where(HOLDS.c.id == hold["id"], HOLDS.c.state == HoldState.PENDING.value)
            .values(
                state=kind.value,
                captured_amount=amount,
                resolved_at_unix_ms=now,
                resolution_transaction_id=transaction_id,
            )
        )
        assert updated.rowcount == 1, "a hold is resolved exactly once"
        for account_id, account_sums in sums.items():
            await self._write_sums(conn, account_id, account_sums)
        return {
            **hold,
            "state": kind.value,
            "captured_amount": amount,
            "resolved_at_unix_ms": now,
            "resolution_transaction_id": transaction_id,
        }

    async def expire_due(
        self, now_unix_ms: int | None = None, *, limit: int = EXPIRE_BATCH_MAX
    ) -> list[Hold]:
        """Expire pending holds whose timeout has passed (the sweeper). Returns the holds it expired."""
        assert 0 < limit <= EXPIRE_BATCH_MAX
        now = self._clock() if now_unix_ms is None else now_unix_ms
        async with self._engine.connect() as conn:
            ids = (
                (
                    await conn.execute(
                        sa.select(HOLDS.c.id)
                        .where(HOLDS.c.state == HoldState.PENDING.value, HOLDS.c.expires_at_unix_ms <= now)
                        .order_by(HOLDS.c.expires_at_unix_ms, HOLDS.c.id)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        expired = [await self._expire_one(hold_id, now) for hold_id in ids]
        return [hold for hold in expired if hold is not None]

    async def _expire_one(self, hold_id: int, now: int) -> Hold | None:
        """Expire one hold in its own transaction; None when someone resolved it first."""
        async with self._engine.begin() as conn:
            hold = await self._one(conn, HOLDS, HOLDS.c.id == hold_id)
            assert hold is not None
            accounts = await self._lock_accounts_by_id(
                conn, [hold["debit_account_id"], hold["credit_account_id"]]
            )
            hold = await self._one(conn, HOLDS, HOLDS.c.id == hold_id, for_update=True)
            assert hold is not None
            if hold["state"] != HoldState.PENDING.value or hold["expires_at_unix_ms"] > now:
                return None
            digest = body_hash({"op": "expire", "hold_id": hold_id})
            resolved = await self._apply_resolution(
                conn, hold, accounts, HoldState.EXPIRED, 0, _expire_key(hold_id), digest, now
            )
            return await self._hold_model(conn, resolved)

    async def _expire_due_for_names(self, names: Iterable[str]) -> None:
        """Lazy expiry: release due holds touching these accounts before anything reads their balance."""
        now = self._clock()
        async with self._engine.connect() as conn:
            ids = await self._due_hold_ids(conn, names, now)
        for hold_id in ids:
            await self._expire_one(hold_id, now)

    async def _after_lazy_expiry(
        self, names: Sequence[str], work: Callable[[AsyncConnection], Awaitable[T]]
    ) -> T:
        """Run `work` in one transaction once no due hold touches `names` (lazy expiry, as
        `_expire_due_for_names`). In the common case, nothing is due: the check is one SELECT inside the
        very transaction that does the work, instead of a transaction of its own before it. When holds
        are due, they expire first, each in its own transaction (locking their accounts in id order as
        always), and `work` then runs in a fresh transaction."""
        now = self._clock()
        async with self._engine.begin() as conn:
            due = await self._due_hold_ids(conn, names, now)
            if not due:
                return await work(conn)
        for hold_id in due:
            await self._expire_one(hold_id, now)
        async with self._engine.begin() as conn:
            return await work(conn)

    async def _due_hold_ids(self, conn: AsyncConnection, names: Iterable[str], now: int) -> list[int]:
        account_ids = sa.select(ACCOUNTS.c.id).where(ACCOUNTS.c.name.in_(list(names))).scalar_subquery()
        ids = (
            await conn.execute(
                sa.select(HOLDS.c.id)
                .where(
                    HOLDS.c.state == HoldState.PENDING.value,
                    HOLDS.c.expires_at_unix_ms <= now,
                    sa.or_(
                        HOLDS.c.debit_account_id.in_(account_ids),
                        HOLDS.c.credit_account_id.in_(account_ids),
                    ),
                )
                .order_by(HOLDS.c.id)
                .limit(EXPIRE_BATCH_MAX)
            )
        ).scalars()
        return list(ids.all())

    async def get_hold(self, hold_id: int) -> Hold:
        async with self._engine.connect() as conn:
            row = await self._one(conn, HOLDS, HOLDS.c.id == hold_id)
        if row is None:
            raise HoldNotFound(f"hold {hold_id}")
        if row["state"] == HoldState.PENDING.value and row["expires_at_unix_ms"] <= self._clock():
            await self._expire_one(hold_id, self._clock())
        async with self._engine.connect() as conn:
            row = await self._one(conn, HOLDS, HOLDS.c.id == hold_id)
            assert row is not None
            return await self._hold_model(conn, row)

    async def open_holds(self, account: str | None = None) -> list[Hold]:
        """Pending holds (due ones are expired first), oldest first, optionally only those on `account`."""
        if account is None:
            await self.expire_due()
        else:
            await self._expire_due_for_names([account])
        async with self._engine.connect() as conn:
            query = sa.select(HOLDS).where(HOLDS.c.state == HoldState.PENDING.value).order_by(HOLDS.c.id)
            if account is not None:
                row = await self._account_row(conn, account)
                if row is None:
                    raise AccountNotFound(account)
                query = query.where(
                    sa.or_(HOLDS.c.debit_account_id == row["id"], HOLDS.c.credit_account_id == row["id"])
                )
            rows = (await conn.execute(query)).mappings().all()
            return [await self._hold_model(conn, row) for row in rows]

    async def holds(self, *, state: HoldState | None = None, limit: int = 1_000) -> list[Hold]:
        """Holds in any state (for checks and the CLI), newest first."""
        assert 0 < limit <= STATEMENT_LINES_MAX
        async with self._engine.connect() as conn:
            query = sa.select(HOLDS).order_by(HOLDS.c.id.desc()).limit(limit)
            if state is not None:
                query = query.where(HOLDS.c.state == state.value)
            rows = (await conn.execute(query)).mappings().all()
            return [await self._hold_model(conn, row) for row in rows]

    # ----------------------------------------------------------------------------------------- balances

    async def balance(self, account: str) -> Balance:
        """Cached balance of one account, after releasing its due holds."""
        await self._expire_due_for_names([account])
        async with self._engine.connect() as conn:
            row = await self._account_row(conn, account)
        if row is None:
            raise AccountNotFound(account)
        return _balance(row)

    async def balances(self) -> list[Balance]:
        """Every account's cached balance, by name, after the sweeper has run."""
        await self.expire_due()
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(ACCOUNTS).order_by(ACCOUNTS.c.name))).mappings().all()
        return [_balance(row) for row in rows]

    async def statement(self, account: str, *, limit: int = 100) -> Statement:
        """The account's last `limit` entries with the posted balance after each, oldest first."""
        assert 0 < limit <= STATEMENT_LINES_MAX
        balance = await self.balance(account)
        async with self._engine.connect() as conn:
            row = await self._account_row(conn, account)
            assert row is not None
            query = (
                sa.select(
                    ENTRIES.c.id.label("entry_id"),
                    ENTRIES.c.amount,
                    TRANSACTIONS.c.id,
                    TRANSACTIONS.c.created_at_unix_ms,
                    TRANSACTIONS.c.code,
                    TRANSACTIONS.c.external_ref,
                )
                .join(TRANSACTIONS, TRANSACTIONS.c.id == ENTRIES.c.transaction_id)
                .where(ENTRIES.c.account_id == row["id"])
                .order_by(ENTRIES.c.id.desc())
                .limit(limit)
            )
            rows = list(reversed((await conn.execute(query)).all()))
            # The opening balance comes from the entries themselves, not the cache, so a write landing
            # between the two reads cannot make the running balance inconsistent.
            first_entry_id = rows[0].entry_id if rows else 0
            opening = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(ENTRIES.c.amount), 0)).where(
                        ENTRIES.c.account_id == row["id"], ENTRIES.c.id < first_entry_id
                    )
                )
            ).scalar_one()
        account_type = AccountType(row["type"])
        sign = 1 if normal_balance(account_type, debits=1, credits=0) == 1 else -1
        running = sign * int(opening)
        lines = []
        for r in rows:
            running += sign * r.amount
            lines.append(
                StatementLine(
                    transaction_id=r.id,
                    created_at_unix_ms=r.created_at_unix_ms,
                    code=r.code,
                    external_ref=r.external_ref,
                    amount=r.amount,
                    balance_after=running,
                )
            )
        return Statement(account=account, unit=row["unit"], lines=tuple(lines), balance=balance)

    async def trial_balance(self) -> TrialBalance:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(ACCOUNTS).order_by(ACCOUNTS.c.name))).mappings().all()
        debits: dict[str, int] = {}
        credits: dict[str, int] = {}
        out = []
        for row in rows:
            debits[row["unit"]] = debits.get(row["unit"], 0) + row["debits_posted"]
            credits[row["unit"]] = credits.get(row["unit"], 0) + row["credits_posted"]
            account_type = AccountType(row["type"])
            out.append(
                TrialBalanceRow(
                    account=row["name"],
                    type=account_type,
                    unit=row["unit"],
                    debits_posted=row["debits_posted"],
                    credits_posted=row["credits_posted"],
                    balance=normal_balance(
                        account_type, debits=row["debits_posted"], credits=row["credits_posted"]
                    ),
                )
            )
        return TrialBalance(rows=tuple(out), debits_by_unit=debits, credits_by_unit=credits)

    # ---------------------------------------------------------------------------------------- internals

    async def _one(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        where: sa.ColumnElement[bool],
        *,
        for_update: bool = False,
    ) -> Row | None:
        query = sa.select(table).where(where)
        if for_update and self._lock_rows:
            query = query.with_for_update()
        return (await conn.execute(query)).mappings().one_or_none()

    async def _account_row(self, conn: AsyncConnection, name: str) -> Row | None:
        return await self._one(conn, ACCOUNTS, ACCOUNTS.c.name == name)

    async def _lock_accounts_by_name(self, conn: AsyncConnection, names: Sequence[str]) -> dict[str, Row]:
        """Lock the named accounts in ascending id order and return their fresh rows."""
        rows = await self._lock(conn, ACCOUNTS.c.name.in_(list(names)))
        by_name = {row["name"]: row for row in rows}
        missing = sorted(set(names) - set(by_name))
        if missing:
            raise AccountNotFound(", ".join(missing))
        return by_name

    async def _lock_accounts_by_id(self, conn: AsyncConnection, ids: Sequence[int]) -> dict[int, Row]:
        rows = await self._lock(conn, ACCOUNTS.c.id.in_(list(ids)))
        by_id = {row["id"]: row for row in rows}
        assert set(by_id) == set(ids), "hold accounts exist (foreign keys)"
        return by_id

    async def _lock(self, conn: AsyncConnection, where: sa.ColumnElement[bool]) -> list[Row]:
        # ORDER BY id before FOR UPDATE: every writer takes row locks in the same order, so none deadlock.
        query = sa.select(ACCOUNTS).where(where).order_by(ACCOUNTS.c.id)
        if self._lock_rows:
            query = query.with_for_update()
        rows = list((await conn.execute(query)).mappings().all())
        for row in rows:
            self._names_by_id[row["id"]] = (row["name"], row["unit"])
        return rows

    async def _write_sums(self, conn: AsyncConnection, account_id: int, sums: Sums) -> None:
        result = await conn.execute(ACCOUNTS.update().where(ACCOUNTS.c.id == account_id).values(**sums))
        assert result.rowcount == 1

    async def _insert_transaction(
        self,
        conn: AsyncConnection,
        *,
        idempotency_key: str,
        digest: str,
        code: str,
        external_ref: str | None,
        metadata: Metadata,
        hold_id: int | None,
        entries: list[tuple[int, int]],
    ) -> int:
        assert len(entries) >= 2
        assert sum(amount for _, amount in entries) == 0 or len({a for a, _ in entries}) == len(entries)
        result = await conn.execute(
            TRANSACTIONS.insert().values(
                idempotency_key=idempotency_key,
                body_hash=digest,
                code=code,
                external_ref=external_ref,
                metadata_json=metadata,
                hold_id=hold_id,
                created_at_unix_ms=self._clock(),
            )
        )
        transaction_id = _inserted_id(result)
        await conn.execute(
            ENTRIES.insert(),
            [{"transaction_id": transaction_id, "account_id": a, "amount": amount} for a, amount in entries],
        )
        return transaction_id

    async def _names(self, conn: AsyncConnection, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        missing = [i for i in ids if i not in self._names_by_id]
        if missing:
            rows = await conn.execute(
                sa.select(ACCOUNTS.c.id, ACCOUNTS.c.name, ACCOUNTS.c.unit).where(ACCOUNTS.c.id.in_(missing))
            )
            for account_id, name, unit in rows:
                self._names_by_id[account_id] = (name, unit)
        return self._names_by_id

    async def _load_transaction(self, conn: AsyncConnection, row: Row) -> LedgerTransaction:
        entries = (
            await conn.execute(
                sa.select(ENTRIES.c.account_id, ENTRIES.c.amount)
                .where(ENTRIES.c.transaction_id == row["id"])
                .order_by(ENTRIES.c.id)
            )
        ).all()
        names = await self._names(conn, [e.account_id for e in entries])
        return LedgerTransaction(
            id=row["id"],
            idempotency_key=row["idempotency_key"],
            code=row["code"],
            external_ref=row["external_ref"],
            metadata=row["metadata_json"],
            created_at_unix_ms=row["created_at_unix_ms"],
            hold_id=row["hold_id"],
            postings=tuple(
                PostingLine(account=names[e.account_id][0], amount=e.amount, unit=names[e.account_id][1])
                for e in entries
            ),
        )

    async def _hold_model(self, conn: AsyncConnection, row: Row | dict[str, Any]) -> Hold:
        names = await self._names(conn, [row["debit_account_id"], row["credit_account_id"]])
        return Hold(
            id=row["id"],
            idempotency_key=row["idempotency_key"],
            code=row["code"],
            debit_account=names[row["debit_account_id"]][0],
            credit_account=names[row["credit_account_id"]][0],
            unit=names[row["debit_account_id"]][1],
            amount=row["amount"],
            metadata=row["metadata_json"],
            created_at_unix_ms=row["created_at_unix_ms"],
            expires_at_unix_ms=row["expires_at_unix_ms"],
            state=HoldState(row["state"]),
            captured_amount=row["captured_amount"],
            resolved_at_unix_ms=row["resolved_at_unix_ms"],
            resolution_transaction_id=row["resolution_transaction_id"],
        )


def _expire_key(hold_id: int) -> str:
    return f"hold:{hold_id}:expire"


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    assert isinstance(key[0], int)
    return key[0]


def _check_replay(existing: Row, digest: str, idempotency_key: str) -> None:
    if existing["body_hash"] != digest:
        raise IdempotencyConflict(f"idempotency key {idempotency_key} was used with a different body")


def _sums(row: Row) -> Sums:
    return {column: int(row[column]) for column in SUM_COLUMNS}


def _check_limits(account: Row, sums: Sums, *, releasing: bool = False) -> None:
    """Refuse int64 overflow and, for must-not-go-negative accounts, a negative available balance."""
    for column, value in sums.items():
        assert value >= 0, f"{column} of {account['name']} went below zero: a bookkeeping bug"
        if value > INT64_MAX:
            raise InvalidAmount(f"{column} of {account['name']} would overflow int64")
    account_type, flags = AccountType(account["type"]), AccountFlags(account["flags"])
    if would_go_negative(account_type, flags, **sums):
        # Capturing or releasing a hold never lowers availability, so failing there is a bookkeeping bug.
        assert not releasing, f"resolving a hold overdrew {account['name']}"
        raise InsufficientFunds(f"{account['name']} would go below zero")


def _account_info(row: Row) -> AccountInfo:
    return AccountInfo(
        id=row["id"],
        name=row["name"],
        type=AccountType(row["type"]),
        unit=row["unit"],
        flags=AccountFlags(row["flags"]),
    )


def _balance(row: Row) -> Balance:
    account_type = AccountType(row["type"])
    sums = _sums(row)
    posted = normal_balance(account_type, debits=sums["debits_posted"], credits=sums["credits_posted"])
    pending = outgoing_pending(
        account_type, debits_pending=sums["debits_pending"], credits_pending=sums["credits_pending"]
    )
    return Balance(
        account=row["name"],
        type=account_type,
        unit=row["unit"],
        flags=AccountFlags(row["flags"]),
        posted=posted,
        pending=pending,
        available=posted - pending,
        **sums,
    )
