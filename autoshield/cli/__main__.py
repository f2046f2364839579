from autoshield.cli.app import main

raise SystemExit(main())
