from cart.app import main

main()
