"""egobs: an observability-first Gateway API control plane for Envoy."""

import os as _os

__version__ = "0.1.0"

# egobs spawns Envoy (fork + exec) while gRPC threads run. gRPC's fork handlers only matter
# for children that keep using gRPC; for exec'd ones they just log "skipping fork() handlers".
# Must be set before grpc is first imported, hence here.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
