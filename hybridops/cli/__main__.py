"""``python -m hybridops.cli``: how the lab starts its worker, writer and receiver."""

from hybridops.cli import main

main()
