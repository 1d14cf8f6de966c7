"""`python -m devtools.devhost --port 7071 [--app function_app:app] [--script-root .] …`"""

from devtools.devhost.host import main

raise SystemExit(main())
