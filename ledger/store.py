"""The Ledger: double-entry bookkeeping with holds, on an async SQLAlchemy engine passed in.

Semantics follow TigerBeetle: balanced transactions, pending transfers (holds) resolved exactly once,
must-not-go-negative accounts, idempotent writes. Every write locks the accounts it touches in ascending id
order (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the BEGIN IMMEDIATE of `create_ledger_engine`
serializes writers), re-reads the cached balances under the lock, checks limits, then inserts entries and
updates the cached balances in the same database transaction. A fixed lock order means no deadlocks.

This module must not import `proxy` or `x402`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.driver_sql import DriverStatement
from ledger.engine import SQLITE_BUSY_TIMEOUT_MS
from ledger.errors import (
    AccountConflict,
    AccountNotFound,
    CaptureExceedsHold,
    DuplicateExternalRef,
    HoldAlreadyResolved,
    HoldExpired,
    HoldInGroup,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    UnitMismatch,
)
from ledger.postings import body_hash, normal_balance, outgoing_pending, validate_postings, would_go_negative
from ledger.sqlite_writer import SqliteBatchWriter
from ledger.sync_connection import run_to_end
from ledger.tables import ledger_metadata
from ledger.types import (
    INT64_MAX,
    AccountFlags,
    AccountInfo,
    AccountType,
    Balance,
    CaptureLeg,
    CaptureRequest,
    ExtraTransaction,
    GroupResolutionRequest,
    Hold,
    HoldGroup,
    HoldGroupRequest,
    HoldLeg,
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

__all__ = ["EXPIRE_BATCH_MAX", "STATEMENT_LINES_MAX", "InTransaction", "Ledger", "unix_ms_now"]

ACCOUNTS = ledger_metadata.tables["ledger_accounts"]
TRANSACTIONS = ledger_metadata.tables["ledger_transactions"]
ENTRIES = ledger_metadata.tables["ledger_entries"]
HOLDS = ledger_metadata.tables["ledger_holds"]
RESOLUTIONS = ledger_metadata.tables["ledger_hold_resolutions"]
GROUPS = ledger_metadata.tables["ledger_hold_groups"]
GROUP_RESOLUTIONS = ledger_metadata.tables["ledger_hold_group_resolutions"]

EXPIRE_BATCH_MAX = 1_000
STATEMENT_LINES_MAX = 10_000
SUM_COLUMNS = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")

Row = sa.RowMapping
T = TypeVar("T")
Sums = dict[str, int]

InTransaction: TypeAlias = Callable[[AsyncConnection], Awaitable[None]]
"""The caller's own writes, committed atomically with a capture or void (`also=`).

Contract: it runs once, inside the ledger's database transaction, after the ledger's writes, on the
connection it is given (same database, so the caller's tables are reachable); it must not commit, roll
back or open another connection to write (on SQLite that would wait on this transaction's lock). If it
raises, everything rolls back, the ledger's writes included, and the exception reaches the caller (an
IntegrityError it raises is not retried). It does not run when the idempotency key is replayed (the first
commit already ran it), nor when the hold turned out to be expired (HoldExpired is raised instead). It
runs while the accounts are locked: keep it to a few statements.
"""


@dataclass(frozen=True)
class _Resolution:
    """What a capture or void asks for: per hold (in order) an amount and an optional redirect target."""

    kind: HoldState
    idempotency_key: str
    digest: str
    legs: tuple[CaptureLeg, ...] | None  # None: release every hold in full (void, expiry).
    extra: ExtraTransaction | None

    def account_names(self) -> list[str]:
        """Accounts named by the request itself, locked together with the holds' accounts."""
        names = [leg.credit_account for leg in self.legs or () if leg.credit_account is not None]
        if self.extra is not None:
            names += [posting.account for posting in self.extra.postings]
        return names


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
        # On a SQLite file, writes go through one batch writer (group commit, ledger/sqlite_writer.py),
        # opened on first write and closed when the engine is disposed.
        self._batch_writes = _is_sqlite_file(engine)
        self._writer: SqliteBatchWriter | None = None
        if self._batch_writes:
            sa.event.listen(engine.sync_engine, "engine_disposed", self._close_writer)

    def _close_writer(self, _engine: Any = None) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    async def _write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work` in a database transaction: a savepoint of a shared transaction of the batch writer on
        SQLite, a transaction of its own on PostgreSQL. Returns once committed."""
        if not self._batch_writes:
            return await self._write_in_one_greenlet(work)
        if self._writer is None:
            self._writer = SqliteBatchWriter(self._engine.url, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)
        return await self._writer.run(work)

    async def _write_in_one_greenlet(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work` in a transaction of its own, its statements run from one greenlet (sync_connection.py).

        The pool does not ping a connection before lending it (a round trip per transaction); instead a
        write whose connection turns out dead (the server restarted) is run once more on a fresh one. That
        is safe because every ledger write is idempotent by its key: if the first attempt committed before
        the connection died, the second finds it and answers the same.
        """
        for attempt in range(2):
            try:
                async with self._engine.begin() as conn:
                    return await conn.run_sync(run_to_end, work)
            except sa.exc.DBAPIError as error:
                if attempt or not error.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

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
        return await self._after_lazy_expiry_retried(
            names, lambda conn: self._post_in(conn, request, digest, names)
        )

    async def _post_in(
        self, conn: AsyncConnection, request: PostRequest, digest: str, names: list[str]
    ) -> LedgerTransaction:
        existing = await self._one(conn, TRANSACTIONS, "idempotency_key", request.idempotency_key)
        if existing is not None:
            _check_replay(existing, digest, request.idempotency_key)
            return await self._load_transaction(conn, existing)
        accounts = await self._lock_accounts_by_name(conn, names)
        validate_postings(request.postings, {name: row["unit"] for name, row in accounts.items()})
        if request.external_ref is not None:
            other = await self._one(conn, TRANSACTIONS, "external_ref", request.external_ref)
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
        await self._write_all_sums(conn, {accounts[name]["id"]: sums for name, sums in new_sums.items()})
        row = await self._one(conn, TRANSACTIONS, "id", transaction_id)
        assert row is not None
        return await self._load_transaction(conn, row)

    async def get_transaction(self, transaction_id: int) -> LedgerTransaction | None:
        return await self._find_transaction("id", transaction_id)

    async def transaction_by_external_ref(self, external_ref: str) -> LedgerTransaction | None:
        return await self._find_transaction("external_ref", external_ref)

    async def transaction_by_idempotency_key(self, idempotency_key: str) -> LedgerTransaction | None:
        return await self._find_transaction("idempotency_key", idempotency_key)

    async def _find_transaction(self, column: str, value: object) -> LedgerTransaction | None:
        async with self._engine.connect() as conn:
            row = await self._one(conn, TRANSACTIONS, column, value)
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
        return await self._after_lazy_expiry_retried(
            names, lambda conn: self._hold_in(conn, request, digest, names)
        )

    async def _hold_in(
        self, conn: AsyncConnection, request: HoldRequest, digest: str, names: list[str]
    ) -> Hold:
        existing = await self._one(conn, HOLDS, "idempotency_key", request.idempotency_key)
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
        hold_id = await _INSERT_HOLD.inserted_id(
            conn,
            {
                "idempotency_key": request.idempotency_key,
                "body_hash": digest,
                "code": request.code,
                "debit_account_id": debit["id"],
                "credit_account_id": credit["id"],
                "amount": request.amount,
                "metadata_json": request.metadata,
                "created_at_unix_ms": now,
                "expires_at_unix_ms": now + max(1, round(request.timeout_s * 1000)),
                "state": HoldState.PENDING.value,
            },
        )
        await self._write_all_sums(conn, {debit["id"]: debit_sums, credit["id"]: credit_sums})
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
            "group_id": None,
        }
        return await self._hold_model(conn, row)

    async def capture(
        self,
        hold_id: int,
        amount: int,
        *,
        idempotency_key: str,
        credit_account: str | None = None,
        extra: ExtraTransaction | None = None,
        also: InTransaction | None = None,
    ) -> Hold:
        """Post `amount` (≤ held) of a pending hold and release the rest. Resolves the hold.

        `credit_account` sends the captured amount to another account of the same unit than the one the
        hold named (a request held against one provider may be served by another after failover); the
        reservation on the debit account is what the hold guaranteed, and it is unchanged.

        `extra` books one more balanced transaction (key `hold:<id>:extra`) and `also(conn)` runs the
        caller's own writes, both in the same database transaction, after the ledger's writes: either
        everything commits or nothing does. See `InTransaction` for the contract of `also`. Both are part
        of what the idempotency key stands for (`extra` is in the body hash), and on a replay neither is
        done again. A hold found expired is expired (committed), `extra` and `also` are skipped, and
        HoldExpired is raised. A member of a hold group raises HoldInGroup (use `capture_group`).
        """
        request = CaptureRequest(idempotency_key=idempotency_key, hold_id=hold_id, amount=amount)
        body: dict[str, Any] = {"op": "capture", "hold_id": hold_id, "amount": amount}
        if credit_account is not None:
            body["credit_account"] = credit_account
        if extra is not None:
            body["extra"] = extra.model_dump(mode="json")
        resolution = _Resolution(
            kind=HoldState.CAPTURED,
            idempotency_key=request.idempotency_key,
            digest=body_hash(body),
            legs=(CaptureLeg(amount=request.amount, credit_account=credit_account),),
            extra=extra,
        )
        hold = await self._write_once(lambda conn: self._resolve_in(conn, request.hold_id, resolution), also)
        return _raise_if_expired(hold, HoldState.CAPTURED)

    async def void(self, hold_id: int, *, idempotency_key: str, also: InTransaction | None = None) -> Hold:
        """Release a pending hold in full. Resolves the hold. `also` as for `capture`."""
        request = VoidRequest(idempotency_key=idempotency_key, hold_id=hold_id)
        resolution = _Resolution(
            kind=HoldState.VOIDED,
            idempotency_key=request.idempotency_key,
            digest=body_hash({"op": "void", "hold_id": hold_id}),
            legs=(CaptureLeg(amount=0),),
            extra=None,
        )
        hold = await self._write_once(lambda conn: self._resolve_in(conn, request.hold_id, resolution), also)
        return _raise_if_expired(hold, HoldState.VOIDED)

    async def _write_once(
        self, work: Callable[[AsyncConnection], Awaitable[tuple[T, bool]]], also: InTransaction | None
    ) -> T:
        """Run `work` in one transaction, then `also` in it when `work` says it wrote what was asked.

        A unique-key race (a concurrent writer of the same idempotency key) is retried once, and the retry
        replays. An IntegrityError raised once `also` has started is the caller's: never retried.
        """
        also_started = False

        async def work_and_also(conn: AsyncConnection) -> T:
            nonlocal also_started
            result, wrote = await work(conn)
            if wrote and also is not None:
                also_started = True
                await also(conn)
            return result

        for attempt in range(2):
            also_started = False
            try:
                return await self._write(work_and_also)
            except IntegrityError:
                if attempt == 1 or also_started:
                    raise
        raise AssertionError("unreachable")

    async def _resolve_in(
        self, conn: AsyncConnection, hold_id: int, resolution: _Resolution
    ) -> tuple[Hold, bool]:
        """Resolve one hold; returns it and whether this call resolved it as asked (not replayed, not
        found expired)."""
        legs = resolution.legs
        assert legs is not None
        assert len(legs) == 1
        replayed = await self._replayed_resolution(conn, resolution)
        if replayed is not None:
            return replayed, False
        hold = await self._one(conn, HOLDS, "id", hold_id)
        if hold is None:
            raise HoldNotFound(f"hold {hold_id}")
        if hold["group_id"] is not None:
            raise HoldInGroup(f"hold {hold_id} belongs to hold group {hold['group_id']}: resolve the group")
        by_id, by_name = await self._lock_accounts(
            conn,
            ids=(hold["debit_account_id"], hold["credit_account_id"]),
            names=resolution.account_names(),
        )
        (target_id,) = _target_ids([hold], legs, by_id, by_name)
        if self._lock_rows:
            # Read again under the row lock, taken after the account locks (the fixed lock order). On
            # SQLite, BEGIN IMMEDIATE already serialized this transaction before the first read.
            hold = await self._one(conn, HOLDS, "id", hold_id, for_update=True)
            assert hold is not None
        if hold["state"] != HoldState.PENDING.value:
            # A concurrent call with this very key may have won the lock: then this is its replay.
            replayed = await self._replayed_resolution(conn, resolution)
            if replayed is not None:
                return replayed, False
            raise HoldAlreadyResolved(f"hold {hold_id} is already {hold['state']}")
        now = self._clock()
        sums: dict[int, Sums] = {}
        if hold["expires_at_unix_ms"] <= now:
            digest = body_hash({"op": "expire", "hold_id": hold_id})
            resolved = await self._apply_resolution(
                conn, hold, by_id, sums, HoldState.EXPIRED, 0, _expire_key(hold_id), digest, now
            )
            await self._write_all_sums(conn, sums)
            return await self._hold_model(conn, resolved), False
        amount = legs[0].amount
        if amount > hold["amount"]:
            raise CaptureExceedsHold(f"capture of {amount} exceeds hold {hold_id} of {hold['amount']}")
        resolved = await self._apply_resolution(
            conn,
            hold,
            by_id,
            sums,
            resolution.kind,
            amount,
            resolution.idempotency_key,
            resolution.digest,
            now,
            target_id=target_id,
        )
        if resolution.extra is not None:
            await self._book_extra(conn, resolution.extra, f"hold:{hold_id}:extra", by_name, sums)
        await self._write_all_sums(conn, sums)
        return await self._hold_model(conn, resolved), True

    async def _replayed_resolution(self, conn: AsyncConnection, resolution: _Resolution) -> Hold | None:
        existing = await self._one(conn, RESOLUTIONS, "idempotency_key", resolution.idempotency_key)
        if existing is None:
            return None
        _check_replay(existing, resolution.digest, resolution.idempotency_key)
        row = await self._one(conn, HOLDS, "id", existing["hold_id"])
        assert row is not None
        return await self._hold_model(conn, row)

    async def _apply_resolution(
        self,
        conn: AsyncConnection,
        hold: Row | dict[str, Any],
        accounts: Mapping[int, Row],
        sums: dict[int, Sums],
        kind: HoldState,
        amount: int,
        idempotency_key: str,
        digest: str,
        now: int,
        *,
        target_id: int | None = None,
    ) -> dict[str, Any]:
        """Resolve a pending hold; returns its row as updated (the caller need not read it back).

        The account sums change in `sums` (read from `accounts` on first use); the caller writes them once
        with `_write_all_sums`, after every change of its transaction.
        """
        assert kind is not HoldState.PENDING
        assert 0 <= amount <= hold["amount"]
        debit_id, credit_id = hold["debit_account_id"], hold["credit_account_id"]
        target_id = credit_id if target_id is None else target_id
        for account_id in (debit_id, credit_id, target_id):
            sums.setdefault(account_id, _sums(accounts[account_id]))
        sums[debit_id]["debits_pending"] -= hold["amount"]
        sums[credit_id]["credits_pending"] -= hold["amount"]
        sums[debit_id]["debits_posted"] += amount
        sums[target_id]["credits_posted"] += amount
        for account_id in {debit_id, credit_id, target_id}:
            _check_limits(accounts[account_id], sums[account_id], releasing=True)
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
                entries=[(debit_id, amount), (target_id, -amount)],
            )
        await _INSERT_RESOLUTION.execute(
            conn,
            {
                "hold_id": hold["id"],
                "idempotency_key": idempotency_key,
                "body_hash": digest,
                "kind": kind.value,
                "amount": amount,
                "transaction_id": transaction_id,
                "created_at_unix_ms": now,
            },
        )
        updated = await _RESOLVE_HOLD.execute(
            conn,
            {
                "hold_id": hold["id"],
                "state": kind.value,
                "captured_amount": amount,
                "resolved_at_unix_ms": now,
                "resolution_transaction_id": transaction_id,
            },
        )
        assert updated.rowcount == 1, "a hold is resolved exactly once"
        return {
            **hold,
            "state": kind.value,
            "captured_amount": amount,
            "resolved_at_unix_ms": now,
            "resolution_transaction_id": transaction_id,
        }

    async def _book_extra(
        self,
        conn: AsyncConnection,
        extra: ExtraTransaction,
        idempotency_key: str,
        accounts: Mapping[str, Row],
        sums: dict[int, Sums],
    ) -> None:
        """Book `extra` as its own balanced transaction in the caller's database transaction."""
        validate_postings(extra.postings, {p.account: accounts[p.account]["unit"] for p in extra.postings})
        for posting in extra.postings:
            row = accounts[posting.account]
            side = "debits_posted" if posting.amount > 0 else "credits_posted"
            sums.setdefault(row["id"], _sums(row))[side] += abs(posting.amount)
        for posting in extra.postings:
            _check_limits(accounts[posting.account], sums[accounts[posting.account]["id"]])
        await self._insert_transaction(
            conn,
            idempotency_key=idempotency_key,
            digest=body_hash(extra.model_dump(mode="json")),
            code=extra.code,
            external_ref=None,
            metadata=extra.metadata,
            hold_id=None,
            entries=[(accounts[p.account]["id"], p.amount) for p in extra.postings],
        )

    # -------------------------------------------------------------------------------------- hold groups

    async def hold_group(
        self,
        *,
        idempotency_key: str,
        holds: Sequence[HoldLeg | tuple[str, str, int]],
        timeout_s: float,
        code: str = "hold",
        metadata: Metadata | None = None,
    ) -> HoldGroup:
        """Place several holds in one database transaction: all of them, or none.

        Each hold is `(debit_account, credit_account, amount)`; they share the timeout, code and metadata.
        Every account involved is locked in ascending id order (no deadlock with any other writer) and
        every must-not-go-negative limit is checked with all the group's holds counted (two holds on one
        account add up). InsufficientFunds names the first refusing account in the group's order. One
        idempotency key stands for the whole group: a replay with the same body returns the same group,
        another body raises IdempotencyConflict. The group is resolved as a whole (`capture_group`,
        `void_group`) and expires as a whole; its members refuse single capture and void.
        """
        request = HoldGroupRequest(
            idempotency_key=idempotency_key,
            code=code,
            holds=tuple(
                h if isinstance(h, HoldLeg) else HoldLeg(debit_account=h[0], credit_account=h[1], amount=h[2])
                for h in holds
            ),
            timeout_s=timeout_s,
            metadata=metadata or {},
        )
        if any(leg.debit_account == leg.credit_account for leg in request.holds):
            raise InvalidAmount("a hold needs two different accounts")
        digest = body_hash(request.model_dump(mode="json", exclude={"idempotency_key"}))
        names = sorted({name for leg in request.holds for name in (leg.debit_account, leg.credit_account)})
        return await self._after_lazy_expiry_retried(
            names, lambda conn: self._hold_group_in(conn, request, digest, names)
        )

    async def _hold_group_in(
        self, conn: AsyncConnection, request: HoldGroupRequest, digest: str, names: list[str]
    ) -> HoldGroup:
        existing = await self._one(conn, GROUPS, "idempotency_key", request.idempotency_key)
        if existing is not None:
            _check_replay(existing, digest, request.idempotency_key)
            return await self._load_group(conn, existing["id"])
        accounts = await self._lock_accounts_by_name(conn, names)
        # Insertion order is the group's order, so the first refusing account is the one reported.
        sums: dict[str, Sums] = {}
        for leg in request.holds:
            debit, credit = accounts[leg.debit_account], accounts[leg.credit_account]
            if debit["unit"] != credit["unit"]:
                raise UnitMismatch(
                    f"{leg.debit_account} is in {debit['unit']}, {leg.credit_account} in {credit['unit']}"
                )
            sums.setdefault(leg.debit_account, _sums(debit))["debits_pending"] += leg.amount
            sums.setdefault(leg.credit_account, _sums(credit))["credits_pending"] += leg.amount
        for name, account_sums in sums.items():
            _check_limits(accounts[name], account_sums)
        now = self._clock()
        group: dict[str, Any] = {
            "code": request.code,
            "metadata_json": request.metadata,
            "created_at_unix_ms": now,
            "expires_at_unix_ms": now + max(1, round(request.timeout_s * 1000)),
            "state": HoldState.PENDING.value,
            "resolved_at_unix_ms": None,
        }
        group_id = _inserted_id(
            await conn.execute(
                GROUPS.insert().values(idempotency_key=request.idempotency_key, body_hash=digest, **group)
            )
        )
        group |= {"id": group_id, "idempotency_key": request.idempotency_key}
        members = [
            _member_row(group, digest, index, leg, accounts) for index, leg in enumerate(request.holds)
        ]
        inserted = await conn.execute(
            HOLDS.insert().returning(HOLDS.c.id, sort_by_parameter_order=True), members
        )
        for member, hold_id in zip(members, inserted.scalars().all(), strict=True):
            member["id"] = hold_id
        await self._write_all_sums(
            conn, {accounts[name]["id"]: account_sums for name, account_sums in sums.items()}
        )
        return await self._group_model(conn, group, members)

    async def capture_group(
        self,
        group_id: int,
        captures: Sequence[int | CaptureLeg],
        *,
        idempotency_key: str,
        extra: ExtraTransaction | None = None,
        also: InTransaction | None = None,
    ) -> HoldGroup:
        """Capture on each hold of a pending group and release the rest, in one database transaction.

        `captures` gives, in the group's order, one amount per hold (≤ its own amount; 0 releases it all)
        or a CaptureLeg that also sends the captured amount to another credit account of the same unit.
        `extra` (key `hold_group:<id>:extra`) and `also` as for `capture`. A group found expired is
        expired as a whole (committed) and HoldExpired is raised.
        """
        request = GroupResolutionRequest(
            idempotency_key=idempotency_key,
            group_id=group_id,
            captures=tuple(c if isinstance(c, CaptureLeg) else CaptureLeg(amount=c) for c in captures),
        )
        body: dict[str, Any] = request.model_dump(mode="json", exclude={"idempotency_key"})
        body["op"] = "capture_group"
        if extra is not None:
            body["extra"] = extra.model_dump(mode="json")
        resolution = _Resolution(
            kind=HoldState.CAPTURED,
            idempotency_key=request.idempotency_key,
            digest=body_hash(body),
            legs=request.captures,
            extra=extra,
        )
        group = await self._write_once(lambda conn: self._resolve_group_in(conn, group_id, resolution), also)
        return _raise_if_group_expired(group, HoldState.CAPTURED)

    async def void_group(
        self, group_id: int, *, idempotency_key: str, also: InTransaction | None = None
    ) -> HoldGroup:
        """Release every hold of a pending group, in one database transaction. `also` as for `capture`."""
        request = GroupResolutionRequest(idempotency_key=idempotency_key, group_id=group_id)
        resolution = _Resolution(
            kind=HoldState.VOIDED,
            idempotency_key=request.idempotency_key,
            digest=body_hash({"op": "void_group", "group_id": group_id}),
            legs=None,
            extra=None,
        )
        group = await self._write_once(lambda conn: self._resolve_group_in(conn, group_id, resolution), also)
        return _raise_if_group_expired(group, HoldState.VOIDED)

    async def _resolve_group_in(
        self, conn: AsyncConnection, group_id: int, resolution: _Resolution
    ) -> tuple[HoldGroup, bool]:
        """Resolve a whole group; returns it and whether this call resolved it as asked."""
        replayed = await self._replayed_group_resolution(conn, resolution)
        if replayed is not None:
            return replayed, False
        group = await self._one(conn, GROUPS, "id", group_id)
        if group is None:
            raise HoldNotFound(f"hold group {group_id}")
        members = await self._group_members(conn, group_id)
        legs = (
            resolution.legs if resolution.legs is not None else tuple(CaptureLeg(amount=0) for _ in members)
        )
        if len(legs) != len(members):
            raise InvalidAmount(f"hold group {group_id} has {len(members)} holds, not {len(legs)} captures")
        by_id, by_name = await self._lock_accounts(
            conn, ids=_member_account_ids(members), names=resolution.account_names()
        )
        target_ids = _target_ids(members, legs, by_id, by_name)
        if self._lock_rows:
            group = await self._one(conn, GROUPS, "id", group_id, for_update=True)
            assert group is not None
        if group["state"] != HoldState.PENDING.value:
            replayed = await self._replayed_group_resolution(conn, resolution)
            if replayed is not None:
                return replayed, False
            raise HoldAlreadyResolved(f"hold group {group_id} is already {group['state']}")
        now = self._clock()
        sums: dict[int, Sums] = {}
        if group["expires_at_unix_ms"] <= now:
            expired = await self._expire_group_rows(conn, group, members, by_id, sums, now)
            await self._write_all_sums(conn, sums)
            return expired, False
        for leg, member in zip(legs, members, strict=True):
            if leg.amount > member["amount"]:
                raise CaptureExceedsHold(
                    f"capture of {leg.amount} exceeds hold {member['id']} of {member['amount']}"
                )
        resolved = await self._apply_group_resolution(
            conn, group, members, by_id, sums, resolution, [leg.amount for leg in legs], target_ids, now
        )
        if resolution.extra is not None:
            await self._book_extra(conn, resolution.extra, f"hold_group:{group_id}:extra", by_name, sums)
        await self._write_all_sums(conn, sums)
        return resolved, True

    async def _replayed_group_resolution(
        self, conn: AsyncConnection, resolution: _Resolution
    ) -> HoldGroup | None:
        existing = await self._one(conn, GROUP_RESOLUTIONS, "idempotency_key", resolution.idempotency_key)
        if existing is None:
            return None
        _check_replay(existing, resolution.digest, resolution.idempotency_key)
        return await self._load_group(conn, existing["group_id"])

    async def _apply_group_resolution(
        self,
        conn: AsyncConnection,
        group: Row | dict[str, Any],
        members: Sequence[Row],
        accounts: Mapping[int, Row],
        sums: dict[int, Sums],
        resolution: _Resolution,
        amounts: Sequence[int],
        target_ids: Sequence[int],
        now: int,
    ) -> HoldGroup:
        """Resolve every member of a pending group, record the group's resolution, mark the group."""
        assert len(amounts) == len(members) == len(target_ids)
        assert resolution.kind is not HoldState.PENDING
        kind = resolution.kind
        resolved = []
        for member, amount, target_id in zip(members, amounts, target_ids, strict=True):
            member_key = (
                _expire_key(member["id"]) if kind is HoldState.EXPIRED else _group_member_key(member["id"])
            )
            resolved.append(
                await self._apply_resolution(
                    conn,
                    member,
                    accounts,
                    sums,
                    kind,
                    amount,
                    member_key,
                    resolution.digest,
                    now,
                    target_id=target_id,
                )
            )
        await conn.execute(
            GROUP_RESOLUTIONS.insert().values(
                group_id=group["id"],
                idempotency_key=resolution.idempotency_key,
                body_hash=resolution.digest,
                kind=kind.value,
                created_at_unix_ms=now,
            )
        )
        updated = await conn.execute(
            GROUPS.update()
            .where(GROUPS.c.id == group["id"], GROUPS.c.state == HoldState.PENDING.value)
            .values(state=kind.value, resolved_at_unix_ms=now)
        )
        assert updated.rowcount == 1, "a hold group is resolved exactly once"
        return await self._group_model(
            conn, {**group, "state": kind.value, "resolved_at_unix_ms": now}, resolved
        )

    async def _expire_group_rows(
        self,
        conn: AsyncConnection,
        group: Row | dict[str, Any],
        members: Sequence[Row],
        accounts: Mapping[int, Row],
        sums: dict[int, Sums],
        now: int,
    ) -> HoldGroup:
        """Expire a pending group whose accounts and row the caller has locked."""
        resolution = _Resolution(
            kind=HoldState.EXPIRED,
            idempotency_key=f"hold_group:{group['id']}:expire",
            digest=body_hash({"op": "expire", "group_id": group["id"]}),
            legs=None,
            extra=None,
        )
        targets = [member["credit_account_id"] for member in members]
        return await self._apply_group_resolution(
            conn, group, members, accounts, sums, resolution, [0] * len(members), targets, now
        )

    async def _expire_group_in(self, conn: AsyncConnection, group_id: int, now: int) -> HoldGroup | None:
        """Expire a whole group in the caller's transaction; None when it is resolved or not due."""
        members = await self._group_members(conn, group_id)
        by_id, _ = await self._lock_accounts(conn, ids=_member_account_ids(members), names=())
        group = await self._one(conn, GROUPS, "id", group_id, for_update=True)
        assert group is not None
        if group["state"] != HoldState.PENDING.value or group["expires_at_unix_ms"] > now:
            return None
        sums: dict[int, Sums] = {}
        expired = await self._expire_group_rows(conn, group, members, by_id, sums, now)
        await self._write_all_sums(conn, sums)
        return expired

    async def get_hold_group(self, group_id: int) -> HoldGroup:
        """A hold group with its members, after expiring it when it is due."""
        async with self._engine.connect() as conn:
            group = await self._one(conn, GROUPS, "id", group_id)
        if group is None:
            raise HoldNotFound(f"hold group {group_id}")
        now = self._clock()
        if group["state"] == HoldState.PENDING.value and group["expires_at_unix_ms"] <= now:
            await self._write(lambda conn: self._expire_group_in(conn, group_id, now))
        async with self._engine.connect() as conn:
            return await self._load_group(conn, group_id)

    # ----------------------------------------------------------------------------------------- expiry

    async def expire_due(
        self, now_unix_ms: int | None = None, *, limit: int = EXPIRE_BATCH_MAX
    ) -> list[Hold]:
        """Expire pending holds whose timeout has passed (the sweeper). Returns the holds it expired
        (every member of an expired group, though some may be past `limit`)."""
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
        return [hold for hold_id in ids for hold in await self._expire_one(hold_id, now)]

    async def _expire_one(self, hold_id: int, now: int) -> list[Hold]:
        """Expire one hold (or its whole group) in its own transaction; [] when resolved first."""
        return await self._write(lambda conn: self._expire_one_in(conn, hold_id, now))

    async def _expire_one_in(self, conn: AsyncConnection, hold_id: int, now: int) -> list[Hold]:
        hold = await self._one(conn, HOLDS, "id", hold_id)
        assert hold is not None
        if hold["group_id"] is not None:
            group = await self._expire_group_in(conn, hold["group_id"], now)
            return [] if group is None else list(group.holds)
        accounts = await self._lock_accounts_by_id(
            conn, [hold["debit_account_id"], hold["credit_account_id"]]
        )
        hold = await self._one(conn, HOLDS, "id", hold_id, for_update=True)
        assert hold is not None
        if hold["state"] != HoldState.PENDING.value or hold["expires_at_unix_ms"] > now:
            return []
        digest = body_hash({"op": "expire", "hold_id": hold_id})
        sums: dict[int, Sums] = {}
        resolved = await self._apply_resolution(
            conn, hold, accounts, sums, HoldState.EXPIRED, 0, _expire_key(hold_id), digest, now
        )
        await self._write_all_sums(conn, sums)
        return [await self._hold_model(conn, resolved)]

    async def _expire_due_for_names(self, names: Iterable[str]) -> None:
        """Lazy expiry: release due holds touching these accounts before anything reads their balance."""
        now = self._clock()
        async with self._engine.connect() as conn:
            ids = await self._due_hold_ids(conn, names, now)
        for hold_id in ids:
            await self._expire_one(hold_id, now)

    async def _after_lazy_expiry_retried(
        self, names: Sequence[str], work: Callable[[AsyncConnection], Awaitable[T]]
    ) -> T:
        """`_after_lazy_expiry`, retried once when a concurrent writer inserted the same idempotency key or
        external ref first: the retry then replays the stored result or refuses the conflict."""
        for attempt in range(2):
            try:
                return await self._after_lazy_expiry(names, work)
            except IntegrityError:
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def _after_lazy_expiry(
        self, names: Sequence[str], work: Callable[[AsyncConnection], Awaitable[T]]
    ) -> T:
        """Run `work` in one transaction once no due hold touches `names` (lazy expiry, as
        `_expire_due_for_names`). In the common case, nothing is due: the check is one SELECT inside the
        very transaction that does the work, instead of a transaction of its own before it. When holds
        are due, they expire first, each in its own transaction (locking their accounts in id order as
        always), and `work` then runs in a fresh transaction."""
        now = self._clock()
        due: list[int] = []

        async def work_unless_due(conn: AsyncConnection) -> T | None:
            due[:] = await self._due_hold_ids(conn, names, now)
            return None if due else await work(conn)

        result = await self._write(work_unless_due)
        if not due:
            return cast(T, result)
        for hold_id in due:
            await self._expire_one(hold_id, now)
        return await self._write(work)

    async def _due_hold_ids(self, conn: AsyncConnection, names: Iterable[str], now: int) -> list[int]:
        ids = (await _DUE_HOLD_IDS.execute(conn, {"names": list(names), "now": now})).scalars()
        return list(ids.all())

    async def get_hold(self, hold_id: int) -> Hold:
        async with self._engine.connect() as conn:
            row = await self._one(conn, HOLDS, "id", hold_id)
        if row is None:
            raise HoldNotFound(f"hold {hold_id}")
        if row["state"] == HoldState.PENDING.value and row["expires_at_unix_ms"] <= self._clock():
            await self._expire_one(hold_id, self._clock())
        async with self._engine.connect() as conn:
            row = await self._one(conn, HOLDS, "id", hold_id)
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
        column: str,
        value: object,
        *,
        for_update: bool = False,
    ) -> Row | None:
        """The row of `table` whose `column` equals `value` (a unique column), or None."""
        query = _select_by(table, column, for_update=for_update and self._lock_rows)
        row: Row | None = (await query.execute(conn, {"value": value})).mappings().one_or_none()
        return row

    async def _account_row(self, conn: AsyncConnection, name: str) -> Row | None:
        return await self._one(conn, ACCOUNTS, "name", name)

    async def _lock_accounts_by_name(self, conn: AsyncConnection, names: Sequence[str]) -> dict[str, Row]:
        """Lock the named accounts in ascending id order and return their fresh rows."""
        rows = await self._lock(conn, ids=(), names=names)
        by_name = {row["name"]: row for row in rows}
        missing = sorted(set(names) - set(by_name))
        if missing:
            raise AccountNotFound(", ".join(missing))
        return by_name

    async def _lock_accounts(
        self, conn: AsyncConnection, *, ids: Iterable[int], names: Iterable[str]
    ) -> tuple[dict[int, Row], dict[str, Row]]:
        """Lock accounts given by id or by name in ONE statement, so one ascending id order covers them
        all; returns the fresh rows by id and by name."""
        ids, names = set(ids), set(names)
        assert ids or names
        rows = await self._lock(conn, ids=sorted(ids), names=sorted(names))
        by_id = {row["id"]: row for row in rows}
        by_name = {row["name"]: row for row in rows}
        assert ids <= set(by_id), "hold accounts exist (foreign keys)"
        missing = sorted(names - set(by_name))
        if missing:
            raise AccountNotFound(", ".join(missing))
        return by_id, by_name

    async def _lock_accounts_by_id(self, conn: AsyncConnection, ids: Sequence[int]) -> dict[int, Row]:
        rows = await self._lock(conn, ids=ids, names=())
        by_id = {row["id"]: row for row in rows}
        assert set(by_id) == set(ids), "hold accounts exist (foreign keys)"
        return by_id

    async def _lock(self, conn: AsyncConnection, *, ids: Sequence[int], names: Sequence[str]) -> list[Row]:
        """The accounts with these ids or names, row-locked in ascending id order on PostgreSQL."""
        query = _lock_accounts_query(by_ids=bool(ids), by_names=bool(names), for_update=self._lock_rows)
        parameters = {"ids": list(ids), "names": list(names)}
        rows = list((await query.execute(conn, parameters)).mappings().all())
        for row in rows:
            self._names_by_id[row["id"]] = (row["name"], row["unit"])
        return rows

    async def _write_all_sums(self, conn: AsyncConnection, sums: Mapping[int, Sums]) -> None:
        # In id order, like the locks: the UPDATEs take no lock this transaction does not hold already.
        # One executemany: on PostgreSQL one round trip for all of them (asyncpg pipelines the rows).
        rows = [{"account_id": account_id, **sums[account_id]} for account_id in sorted(sums)]
        result = await _WRITE_SUMS.execute(conn, rows)
        assert result.rowcount in (len(rows), -1), (result.rowcount, len(rows))

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
        transaction_id = await _INSERT_TRANSACTION.inserted_id(
            conn,
            {
                "idempotency_key": idempotency_key,
                "body_hash": digest,
                "code": code,
                "external_ref": external_ref,
                "metadata_json": metadata,
                "hold_id": hold_id,
                "created_at_unix_ms": self._clock(),
            },
        )
        await _INSERT_ENTRIES.execute(
            conn,
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
            group_id=row["group_id"],
        )

    async def _group_members(self, conn: AsyncConnection, group_id: int) -> list[Row]:
        # Members were inserted in the group's order in one statement, so their ids follow that order.
        query = sa.select(HOLDS).where(HOLDS.c.group_id == group_id).order_by(HOLDS.c.id)
        members = list((await conn.execute(query)).mappings().all())
        assert members, f"hold group {group_id} has holds"
        return members

    async def _load_group(self, conn: AsyncConnection, group_id: int) -> HoldGroup:
        group = await self._one(conn, GROUPS, "id", group_id)
        assert group is not None
        return await self._group_model(conn, group, await self._group_members(conn, group_id))

    async def _group_model(
        self,
        conn: AsyncConnection,
        group: Row | dict[str, Any],
        members: Sequence[Row | dict[str, Any]],
    ) -> HoldGroup:
        return HoldGroup(
            id=group["id"],
            idempotency_key=group["idempotency_key"],
            code=group["code"],
            metadata=group["metadata_json"],
            created_at_unix_ms=group["created_at_unix_ms"],
            expires_at_unix_ms=group["expires_at_unix_ms"],
            state=HoldState(group["state"]),
            resolved_at_unix_ms=group["resolved_at_unix_ms"],
            holds=tuple([await self._hold_model(conn, member) for member in members]),
        )


# The hot path's statements, built once (building a Core statement and its cache key costs several times
# more than executing the compiled one) and run as driver SQL where that is exact (ledger/driver_sql.py).
_INSERT_HOLD = DriverStatement(HOLDS.insert())
_INSERT_RESOLUTION = DriverStatement(RESOLUTIONS.insert())
_INSERT_TRANSACTION = DriverStatement(TRANSACTIONS.insert())
_INSERT_ENTRIES = DriverStatement(ENTRIES.insert())
_WRITE_SUMS = DriverStatement(
    ACCOUNTS.update()
    .where(ACCOUNTS.c.id == sa.bindparam("account_id"))
    .values({column: sa.bindparam(column) for column in SUM_COLUMNS})
)
_RESOLVE_HOLD = DriverStatement(
    HOLDS.update()
    .where(HOLDS.c.id == sa.bindparam("hold_id"), HOLDS.c.state == HoldState.PENDING.value)
    .values(
        state=sa.bindparam("state"),
        captured_amount=sa.bindparam("captured_amount"),
        resolved_at_unix_ms=sa.bindparam("resolved_at_unix_ms"),
        resolution_transaction_id=sa.bindparam("resolution_transaction_id"),
    )
)
_DUE_ACCOUNT_IDS = (
    sa.select(ACCOUNTS.c.id)
    .where(ACCOUNTS.c.name.in_(sa.bindparam("names", expanding=True)))
    .scalar_subquery()
)
_DUE_HOLD_IDS = DriverStatement(
    sa.select(HOLDS.c.id)
    .where(
        HOLDS.c.state == HoldState.PENDING.value,
        HOLDS.c.expires_at_unix_ms <= sa.bindparam("now"),
        sa.or_(
            HOLDS.c.debit_account_id.in_(_DUE_ACCOUNT_IDS), HOLDS.c.credit_account_id.in_(_DUE_ACCOUNT_IDS)
        ),
    )
    .order_by(HOLDS.c.id)
    .limit(EXPIRE_BATCH_MAX)
)


@functools.cache
def _select_by(table: sa.Table, column: str, *, for_update: bool) -> DriverStatement:
    query = sa.select(table).where(table.c[column] == sa.bindparam("value"))
    return DriverStatement(query.with_for_update() if for_update else query)


@functools.cache
def _lock_accounts_query(*, by_ids: bool, by_names: bool, for_update: bool) -> DriverStatement:
    assert by_ids or by_names
    conditions = []
    if by_ids:
        conditions.append(ACCOUNTS.c.id.in_(sa.bindparam("ids", expanding=True)))
    if by_names:
        conditions.append(ACCOUNTS.c.name.in_(sa.bindparam("names", expanding=True)))
    # ORDER BY id before FOR UPDATE: every writer takes row locks in the same order, so none deadlock.
    query = sa.select(ACCOUNTS).where(sa.or_(*conditions)).order_by(ACCOUNTS.c.id)
    return DriverStatement(query.with_for_update() if for_update else query)


def _is_sqlite_file(engine: AsyncEngine) -> bool:
    database = engine.url.database
    return engine.dialect.name == "sqlite" and bool(database) and database != ":memory:"


def _expire_key(hold_id: int) -> str:
    return f"hold:{hold_id}:expire"


def _group_member_key(hold_id: int) -> str:
    """The resolution key of a group's member (the caller's key is the group's resolution's)."""
    return f"hold:{hold_id}:group"


def _raise_if_expired(hold: Hold, asked: HoldState) -> Hold:
    if hold.state is HoldState.EXPIRED and asked is not HoldState.EXPIRED:
        # The expiry itself was committed; the caller still learns that its resolution failed.
        raise HoldExpired(f"hold {hold.id} expired at {hold.expires_at_unix_ms} unix ms")
    return hold


def _raise_if_group_expired(group: HoldGroup, asked: HoldState) -> HoldGroup:
    if group.state is HoldState.EXPIRED and asked is not HoldState.EXPIRED:
        raise HoldExpired(f"hold group {group.id} expired at {group.expires_at_unix_ms} unix ms")
    return group


def _member_account_ids(members: Sequence[Row]) -> set[int]:
    return {member[column] for member in members for column in ("debit_account_id", "credit_account_id")}


def _target_ids(
    holds: Sequence[Row],
    legs: Sequence[CaptureLeg],
    by_id: Mapping[int, Row],
    by_name: Mapping[str, Row],
) -> list[int]:
    """The account each hold's capture is credited to: its own credit account, or a redirect of the same
    unit."""
    assert len(holds) == len(legs)
    targets = []
    for hold, leg in zip(holds, legs, strict=True):
        if leg.credit_account is None:
            targets.append(hold["credit_account_id"])
            continue
        target = by_name[leg.credit_account]
        if target["unit"] != by_id[hold["credit_account_id"]]["unit"]:
            raise UnitMismatch(f"capture of hold {hold['id']} into {leg.credit_account}: another unit")
        targets.append(target["id"])
    return targets


def _member_row(
    group: Mapping[str, Any], digest: str, index: int, leg: HoldLeg, accounts: Mapping[str, Row]
) -> dict[str, Any]:
    """The ledger_holds row of a group's `index`-th hold, as inserted (the caller adds its id)."""
    return {
        # Minted by the ledger: the caller's key belongs to the group.
        "idempotency_key": f"hold_group:{group['id']}:{index}",
        "body_hash": digest,
        "code": group["code"],
        "debit_account_id": accounts[leg.debit_account]["id"],
        "credit_account_id": accounts[leg.credit_account]["id"],
        "amount": leg.amount,
        "metadata_json": group["metadata_json"],
        "created_at_unix_ms": group["created_at_unix_ms"],
        "expires_at_unix_ms": group["expires_at_unix_ms"],
        "state": HoldState.PENDING.value,
        "captured_amount": None,
        "resolved_at_unix_ms": None,
        "resolution_transaction_id": None,
        "group_id": group["id"],
    }


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
        raise InsufficientFunds(f"{account['name']} would go below zero", account=account["name"])


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
