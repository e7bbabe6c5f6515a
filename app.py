"""Start the UniFormer Lab browser app: ``python app.py [--host 127.0.0.1] [--port 7860]``."""
from app.main import main

if __name__ == "__main__":
    raise SystemExit(main())
