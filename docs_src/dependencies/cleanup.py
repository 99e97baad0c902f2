import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, WebSocket

from fastapi_channels import Channel, WebSocketException, action, add_channel

app = FastAPI()
add_channel(app)

LEDGER: list[str] = []  # stands in for a database
EVENTS: list[str] = []


class Transaction:
    """For illustration: writes kept until they are committed."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    async def commit(self) -> None:
        await asyncio.sleep(0)  # a database round trip
        LEDGER.extend(self.writes)


async def transaction() -> AsyncIterator[Transaction]:
    tx = Transaction()
    try:
        yield tx  # the handler runs here
        await tx.commit()  # after the handler returned, before its reply is sent
    except BaseException as exc:  # BaseException: asyncio.CancelledError too, when the client goes away
        EVENTS.append(f"rolled back after {type(exc).__name__}")
        raise  # the client still gets its error frame


def timed(action: str) -> Iterator[None]:
    # A sync generator runs inline, on the event loop: keep it quick, with no blocking I/O.
    EVENTS.append(f"start {action}")
    try:
        yield
    finally:
        EVENTS.append(f"end {action}")


class Bank(Channel):
    @action(dependencies=[Depends(timed)])
    async def deposit(self, amount: int, tx: Annotated[Transaction, Depends(transaction)]) -> list[str]:
        if amount <= 0:
            raise WebSocketException(error_msg="Deposit a positive amount.", close=False)
        tx.writes.append(f"deposit {amount}")
        return tx.writes


bank = Bank(channel="bank")


@app.websocket("/bank")
async def bank_endpoint(websocket: WebSocket) -> None:
    await bank.connect(websocket)
