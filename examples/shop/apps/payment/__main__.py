from payment.app import main

main()
