from orderdb.cli import main

main()
