from catalog.app import main

main()
