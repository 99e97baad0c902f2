from fastapi_channels import ActionRouter, Channel, action

router = ActionRouter()


@router.action("ping")
async def ping() -> str:
    return "pong from the router"


class Room(Channel):
    @action()
    async def ping(self) -> str:
        return "pong"


try:
    Room.include_router(router)
except ValueError as exc:
    print(exc)  # raised where the router is included: at import time, not on a frame

Room.include_router(router, prefix="router.")  # another name: no clash
print(Room().actions)  # ['ping', 'router.ping']
