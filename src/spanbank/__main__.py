from spanbank.cli import main

main()
