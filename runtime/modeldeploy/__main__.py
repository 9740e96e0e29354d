from modeldeploy.cli import main

raise SystemExit(main())
