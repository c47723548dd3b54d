from reviews.app import main

main()
