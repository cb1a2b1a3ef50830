"""The embedded flag server: the book's LOCAL, DELAY and ERROR servers, and the test fixture.

Usage::

    with Server(faults=Faults(delay=(0.5, 0.5))) as server:
        urllib.request.urlopen(server.flags_url + "/br/br.gif")

See ``_resources`` for the routes, ``_fault_routes`` for the misbehaving ones under
``/faults/`` (on in every ``Server``, and in ``serve(fault_routes=True)``), ``_app`` for how
the server works, and ``_tls`` for HTTPS in tests::

    with Server(tls=tls_context(*make_test_certificate(tmp_path))) as server: ...
"""

from ._app import Server, serve
from ._countries import COUNTRY_CODES, COUNTRY_NAMES, POP20_CC, flag_metadata
from ._faults import Faults, parse_delay
from ._gif import flag_gif
from ._limits import ServerLimits
from ._tls import make_test_certificate, tls_context

__all__ = [
    "COUNTRY_CODES",
    "COUNTRY_NAMES",
    "POP20_CC",
    "Faults",
    "Server",
    "ServerLimits",
    "flag_gif",
    "flag_metadata",
    "make_test_certificate",
    "parse_delay",
    "serve",
    "tls_context",
]
