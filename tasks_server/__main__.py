from tasks_server.cli import main

main()
