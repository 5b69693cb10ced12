"""The chaos ServerControl brings a killed embedded server back where clients dial it."""

from orchestrator.scenario.chaos import ServerControl
from standin import EmbeddedServer


async def test_a_restarted_server_keeps_its_http_and_sip_ports(nursery):
    server = EmbeddedServer(api_keys={"sk-control"}, sip_port=0)
    control = ServerControl(server, nursery)
    url = await control.start()
    sip_port = server.sip.port
    control.kill()
    await control.restart()
    assert control.url == url and server.base_url == url
    assert server.sip.port == sip_port and control.restarts == 1
    control.kill()
