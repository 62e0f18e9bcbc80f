import sys

from shipper.cli import main

sys.exit(main())
