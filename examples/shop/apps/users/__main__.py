from users.app import main

main()
