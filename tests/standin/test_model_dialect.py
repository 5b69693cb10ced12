"""The Realtime model fills the dialect seam every session shell drives."""

from standin.model.dialect import ModelSession
from standin.model.realtime import RealtimeSession


def test_realtime_session_is_a_model_session() -> None:
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0)
    assert isinstance(session, ModelSession)
    created = session.start()
    assert created[0]["type"] == "session.created"
    assert session.get_timer() is None


def test_an_object_missing_a_member_is_not_a_model_session() -> None:
    class Half:
        session: dict = {}

        def start(self) -> list:
            return []

    assert not isinstance(Half(), ModelSession)
