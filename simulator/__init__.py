"""A Microsoft Graph alerts_v2 simulator: a deterministic tenant, Graph over http and Entra over https on 127.0.0.1.

`graphlake demo` embeds it; tests pull from it with the real msgraph-sdk and azure-identity. See server.py for how a
client is pointed at it, tenant.py for how time and versions work.
"""

from simulator.faults import Faults
from simulator.server import GraphSimulator, run_forever
from simulator.tenant import QueryResult, Tenant

__all__ = ["Faults", "GraphSimulator", "QueryResult", "Tenant", "run_forever"]
