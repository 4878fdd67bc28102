"""A user's script calling 20 operations of the generated API: ``mypy --strict`` must pass on it.

Checked by tests/system/test_typing.py; never run.
"""

from __future__ import annotations

from zoom_s2s import TokenManager, ZoomClient
from zoom_s2s.api import Caller, SyncCaller
from zoom_s2s.api.meetings import MeetingsCreateBody
from zoom_s2s.sync import SyncZoomClient


async def weekly_housekeeping(tokens: TokenManager) -> list[str]:
    async with ZoomClient(tokens) as zoom:
        caller: Caller = zoom  # the client is what the API groups drive
        del caller
        me = await zoom.users.get("me")
        user_id: str = me.get("id", "")
        created = await zoom.users.create(
            {"action": "create", "user_info": {"email": "new@example.com", "type": 1}}
        )
        await zoom.users.update(created.get("id", ""), {"first_name": "Ada"})
        settings = await zoom.users.get_settings(user_id)
        waiting: bool | None = settings.get("in_meeting", {}).get("waiting_room")
        await zoom.users.set_status(user_id, {"action": "deactivate"})
        emails = [user.get("email", "") async for user in zoom.users.list(status="active")]

        body: MeetingsCreateBody = {"topic": "Planning", "type": 2, "duration": 30}
        meeting = await zoom.meetings.create("me", body)
        meeting_id: int = meeting.get("id", 0)
        topic: str = (await zoom.meetings.get(meeting_id)).get("topic", "")
        await zoom.meetings.update(meeting_id, {"agenda": "Roadmap"})
        async for listed in zoom.meetings.list("me", type="scheduled", page_size=100):
            start: str = listed.get("start_time", "")
            del start
        await zoom.meetings.create_registrant(meeting_id, {"email": "r@example.com",
                                                           "first_name": "R"})
        registrants = [r.get("email") async for r in zoom.meetings.list_registrants(meeting_id)]
        async for participant in zoom.meetings.list_past_meeting_participants("/uuid//x=="):
            name: str = participant.get("name", "")
            del name

        webinar = await zoom.webinars.create("me", {"topic": "Launch"})
        await zoom.webinars.get(webinar.get("id", 0))
        await zoom.webinars.delete(webinar.get("id", 0))

        async for recording in zoom.recordings.list(user_id, from_="2026-01-01"):
            for file in recording.get("recording_files", []):
                await zoom.download(file.get("download_url", ""), f"/tmp/{file.get('id')}.mp4")
        await zoom.recordings.delete(meeting_id, action="trash")

        daily = await zoom.reports.get_daily(year=2026, month=1)
        report = [m async for m in zoom.reports.list_user_meetings(
            user_id, from_="2026-01-01", to="2026-01-31")]
        await zoom.meetings.delete(meeting_id)
        await zoom.chat.files.create(user_id, {"file": ("notes.txt", b"hello")})
        return [topic, str(waiting), *emails, *map(str, registrants), str(len(report)),
                str(daily.get("dates", []))]


def blocking(client: SyncZoomClient) -> int:
    caller: SyncCaller = client
    del caller
    meeting = client.meetings.create("me", {"topic": "Blocking"})
    return len(list(client.meetings.list("me"))) + meeting.get("id", 0)
