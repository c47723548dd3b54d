from shipping.app import main

main()
